"""Stage 3 (engine builtin): the run's results → the selection, and the standalone commands
`framesift select` and `framesift scores` for people who bring their own predictions.

The stage writes `.framesift/runs/<run>/selection.json` (the engine's full output, with the
state it was computed from) and then `runs/<run>/selected.json` for people; a rerun over the
same results and config finds the selection done and changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from framesift.api.errors import validate_or_raise
from framesift.api.manifest import safe_load
from framesift.api.models import ActiveLearningRun
from framesift.api.selection_config import SelectionConfig
from framesift.jobs.collect import load_ok_results, run_entries
from framesift.jobs.context import RunContext
from framesift.jobs.labels import labelled_frames, labels_digest
from framesift.jobs.results import StoredResults
from framesift.jobs.selection.engine import SelectionResult, select
from framesift.jobs.selection.scores import SCORE_NAMES
from framesift.jobs.selection.sources import (
    SourceError,
    frames_of_tasks,
    from_lightly,
    from_results,
    latest_results,
    read_datapool,
    read_embeddings_csv,
    read_metadata,
    read_task,
    task_predictions,
)
from framesift.jobs.storage import open_storage

log = logging.getLogger(__name__)


class SelectorUnavailable(RuntimeError):
    """The run asks for an engine this build cannot run here."""


@dataclass
class SelectOutcome:
    selected: int
    per_video: dict[str, int]
    stopped_because: str
    skipped: bool


def selection_key(ctx: RunContext) -> str:
    return ctx.run_key("selection.json")


def earlier_picks(ctx: RunContext) -> dict[str, tuple[str, str]]:
    """The datapool: frames selected by the other runs over this output, as
    frame name → (the run that picked it, its video)."""
    picks: dict[str, tuple[str, str]] = {}
    for obj in ctx.output.list("runs"):
        parts = obj.key.split("/")
        if len(parts) == 3 and parts[2] == "selected.json" and parts[1] != ctx.name:
            doc = json.loads(ctx.output.read_text(obj.key))
            items = doc.get("selected", []) if isinstance(doc, dict) else doc
            for item in items:
                if isinstance(item, dict):
                    picks.setdefault(item["fileName"], (parts[1], str(item.get("video", ""))))
                else:
                    picks.setdefault(str(item), (parts[1], ""))
    return picks


def context_results(ctx: RunContext, picks: dict[str, tuple[str, str]], own: set[str]) -> list[StoredResults]:
    """The results of earlier runs' videos that this run does not infer (new-only runs) but whose
    picks are in the datapool: loaded so those picks count for diversity and balance."""
    from framesift.jobs import results as results_mod

    wanted: dict[str, str] = {}
    for run_name, video in picks.values():
        if video and video not in own:
            wanted.setdefault(video, run_name)
    keys = []
    for video, run_name in sorted(wanted.items()):
        pointer = results_mod.read_pointer(ctx.output, run_name, video)
        if pointer and pointer.get("status") == "ok":
            keys.append(pointer["cacheKey"])
    return results_mod.stored_results(ctx.output, keys)


def per_video_counts(videos: Iterable[str]) -> dict[str, int]:
    """How many picks each video got, by video name (the picks' `video` fields)."""
    return dict(sorted(Counter(videos).items()))


def check_engine(run: ActiveLearningRun) -> None:
    """Fail before any inference when this process cannot drive the run's engine: a LightlyOne
    run needs its token (the select Job gets it from the Secret; locally, the environment)."""
    if run.spec.selection is not None and run.spec.selector.engine == "lightlyone":
        from framesift.jobs.lightlyone.stage import TOKEN_ENV

        if not os.environ.get(TOKEN_ENV):
            raise SelectorUnavailable(
                f"spec.selector.engine lightlyone: set ${TOKEN_ENV} to your Lightly API token "
                "(LIGHTLY_SERVER_LOCATION for another API than https://api.lightly.ai)"
            )


def check_selection_inputs(ctx: RunContext) -> None:
    """What the builtin engine would refuse after inference, refused before it: a task the model
    does not write, an unknown score, an undeclared METADATA key, a labels file that is missing
    or cannot be read. (LightlyOne's Worker checks its own run.)"""
    from framesift.api.selection_config import EmbeddingsInput, MetadataInput, PredictionsInput, ScoresInput
    from framesift.jobs.selection.engine import SelectionConfigError, did_you_mean

    spec = ctx.run.spec
    if spec.selection is None or spec.selector.engine != "builtin":
        return
    task = spec.model.task
    keys = ["video_name", *(f.name for f in spec.metadata.fields)]
    problems = []
    for i, entry in enumerate(spec.selection.strategies):
        inp = entry.input
        if isinstance(inp, (ScoresInput, PredictionsInput, EmbeddingsInput)) and inp.task and inp.task != task:
            problems.append(f"strategies[{i}].input.task: {inp.task!r} is not this run's task (model.task {task!r})")
        if isinstance(inp, ScoresInput) and inp.score not in SCORE_NAMES:
            problems.append(
                f"strategies[{i}].input.score: unknown score {inp.score!r}{did_you_mean(inp.score, list(SCORE_NAMES))}"
            )
        if isinstance(inp, MetadataInput) and inp.key not in keys and not inp.key.startswith("lightly."):
            problems.append(
                f"strategies[{i}].input.key: unknown metadata key {inp.key!r}{did_you_mean(inp.key, keys)} "
                "(declare it under spec.metadata.fields)"
            )
    if problems:
        raise SelectionConfigError("spec.selection", problems)
    labels_digest(ctx)  # a missing or unreadable labels file fails here, not after inference


def run_select(ctx: RunContext) -> SelectOutcome:
    spec = ctx.run.spec
    check_engine(ctx.run)
    if spec.selector.engine == "lightlyone" and spec.selection is not None:
        from framesift.jobs.lightlyone.stage import run_lightlyone

        document = run_lightlyone(ctx)
        counts = per_video_counts(item["video"] for item in document["selected"])
        return SelectOutcome(len(document["selected"]), counts, document["stoppedBecause"], skipped=False)
    if spec.selection is None:
        raise SourceError("spec.selection is missing: give a LightlyOne selection_config (n_samples, strategies)")
    entries = run_entries(ctx)
    picks = earlier_picks(ctx) if spec.selector.datapool else {}
    datapool = sorted(picks)
    state = {
        "results": sorted([e.video.key, e.cache_key] for e in entries if e.cache_key),
        "config": spec.selection.model_dump(mode="json"),
        "threshold": spec.quality.corruption_threshold,
        "tag": spec.export.tag,
        "datapool": hashlib.sha256("\n".join(datapool).encode()).hexdigest(),
        "labeled": labels_digest(ctx),
    }
    if ctx.output.exists(selection_key(ctx)):
        previous = json.loads(ctx.output.read_text(selection_key(ctx)))
        if previous.get("state") == state and ctx.output.exists(ctx.person_key("selected.json")):
            sel = previous["selection"]
            counts = per_video_counts(item["video"] for item in sel["selected"])
            return SelectOutcome(len(sel["selected"]), counts, sel["stoppedBecause"], skipped=True)

    schema, per_video = read_metadata(ctx.output)
    own = load_ok_results(ctx, entries)
    context = context_results(ctx, picks, {r.video for r in own})
    data = from_results(
        own + context,
        spec.model.task,
        spec.quality.corruption_threshold,
        schema,
        per_video,
        spec.output.frame_format,
        objects=spec.selection.uses_object_embeddings,
    )
    if context:
        data.context_only = np.isin(data.videos, [r.video for r in context])
        log.info("%d earlier videos' picks count as datapool (their videos are not in this run)", len(context))
    labelled = labelled_frames(ctx, data)
    if labelled:
        log.info("%d frames already have labels (spec.selector.labeled): they count as datapool", len(labelled))
    result = select(data, spec.selection, tag=spec.export.tag, datapool_names=sorted({*datapool, *labelled}))
    document = result.to_json()
    document["run"] = ctx.name
    document["corrupt"] = data.corrupt_reasons
    document["frames"] = len(data) - (int(data.context_only.sum()) if data.context_only is not None else 0)
    ctx.output.write_text(selection_key(ctx), json.dumps({"state": state, "selection": document}, indent=1))
    ctx.output.write_text(ctx.person_key("selected.json"), json.dumps(document, indent=1))
    log.info("selected %d frames (%s)", len(result.picks), result.stopped_because)
    return SelectOutcome(
        len(result.picks), per_video_counts(p.video for p in result.picks), result.stopped_because, skipped=False
    )


# ----- standalone commands -----------------------------------------------------------------------


def load_selection_config(path: str) -> SelectionConfig:
    text = Path(path).read_text(encoding="utf-8")
    doc = json.loads(text) if path.endswith(".json") else safe_load(text)
    if isinstance(doc, dict) and "selection_config" in doc:  # a LightlyOne worker config
        doc = doc["selection_config"]
    config: SelectionConfig = validate_or_raise(SelectionConfig, doc, path)
    return config


def standalone_select(
    lightly_dir: str, embeddings: str | None, config_file: str, out: str, datapool_file: str | None, tag: str
) -> SelectionResult:
    config = load_selection_config(config_file)
    storage = open_storage(lightly_dir)
    extra = None
    if embeddings and embeddings.endswith(".csv"):
        names, emb = read_embeddings_csv(Path(embeddings).read_text(encoding="utf-8"))
        data = from_lightly(storage, names, emb)
    elif embeddings:  # framesift's own results: an output folder or bucket holding .framesift/
        results = latest_results(open_storage(embeddings))
        if not results:
            raise SourceError(f"{embeddings} holds no framesift results (.framesift/videos/) and is not a .csv")
        tasks = list(json.loads(storage.read_text(".lightly/predictions/tasks.json")))
        schema, per_video = read_metadata(storage)
        data = from_results(results, tasks[0], 1.0, schema, per_video, objects=config.uses_object_embeddings)
        for task in tasks[1:]:
            categories, per_frame = read_task(storage, task)
            data.predictions[task] = task_predictions(categories, per_frame, data.rows_of(per_frame))
    else:
        data = from_lightly(storage, frames_of_tasks(storage), None, extra)
    datapool = read_datapool(Path(datapool_file).read_text()) if datapool_file else None
    result = select(data, config, tag=tag, datapool_names=datapool)
    Path(out).write_text(json.dumps(result.to_json(), indent=1))
    return result


def scores_csv(lightly_dir: str, task: str) -> str:
    storage = open_storage(lightly_dir)
    categories, per_frame = read_task(storage, task)
    names = sorted(per_frame)
    preds = task_predictions(categories, per_frame, {n: i for i, n in enumerate(names)})
    scores = preds.scores(len(names))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["fileName", *SCORE_NAMES])
    for i, name in enumerate(names):
        writer.writerow([name, *(f"{scores[s][i]:.6f}" for s in SCORE_NAMES)])
    return buffer.getvalue()


def result_summary(result: SelectionResult) -> dict[str, Any]:
    return {
        "selected": len(result.picks),
        "candidates": result.candidates,
        "stoppedBecause": result.stopped_because,
        "perVideo": per_video_counts(p.video for p in result.picks),
    }
