"""Stage 2: the run's results → the LightlyOne layout in the output (SELECTION.md §1).

Exactly one prediction file per inferred frame (an empty list for frames without boxes), the
task's schema, tasks.json, the metadata schema and one metadata file per video. The stage's
marker (`.framesift/runs/<run>/convert.json`) is written last and names the results it
converted, so a rerun over unchanged results does nothing.
"""

from __future__ import annotations

import json
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from framesift.api.models import MetadataSpec
from framesift.jobs.collect import failed_videos, run_entries, write_failed_videos
from framesift.jobs.context import RunContext
from framesift.jobs.formats import lightly
from framesift.jobs.results import VideoResults, read_results
from framesift.jobs.storage import Storage
from framesift.jobs.video import frame_stem, video_name

log = logging.getLogger(__name__)


@dataclass
class ConvertOutcome:
    prediction_files: int
    metadata_files: int
    skipped: bool
    failed: list[dict[str, str]] = field(default_factory=list)  # {name, reason} of every failed video


def _probabilities(res: VideoResults, box: int) -> np.ndarray | None:
    """A box's class probabilities, None when its results have none (a NaN row)."""
    row = res.det_probs[box]
    return None if np.isnan(row).any() else row


def frame_predictions(res: VideoResults, categories: dict[int, str], file_ext: str = "png") -> list[tuple[str, dict]]:
    """(frame stem, prediction file) for every inferred frame of one video, checked."""
    ids = set(categories)
    boxes_by_frame: dict[int, list[dict[str, Any]]] = {}
    for b in range(len(res.det_score)):
        boxes_by_frame.setdefault(int(res.det_frame[b]), []).append(
            lightly.box_prediction(res.det_class[b], res.det_xywh[b], res.det_score[b], _probabilities(res, b))
        )
    width, height = res.manifest.get("width"), res.manifest.get("height")
    out = []
    for index in res.frame_index.tolist():
        stem = frame_stem(res.video, index, res.n_frames)
        doc = lightly.prediction_file(f"{stem}.{file_ext}", boxes_by_frame.get(index, []))
        lightly.check_prediction_file(doc, ids, width, height)
        out.append((stem, doc))
    return out


def video_metadata(video_key: str, spec: MetadataSpec, sidecar: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"video_name": video_name(video_key)}
    for f in spec.fields:
        meta[f.name] = f.default_value
    if sidecar:
        meta.update({k: v for k, v in sidecar.items() if k in {f.name for f in spec.fields}})
    values = spec.values.get(video_key) or spec.values.get(video_name(video_key)) or {}
    meta.update(values)
    return {k: v for k, v in meta.items() if v is not None}


def metadata_fields(spec: MetadataSpec) -> list[tuple[str, str, Any]]:
    fields: list[tuple[str, str, Any]] = [("video_name", "CATEGORICAL_STRING", "")]
    fields += [(f.name, f.value_data_type, f.default_value) for f in spec.fields]
    return fields


def _read_sidecar(storage: Storage, video_key: str) -> dict[str, Any] | None:
    key = f"{video_key}.json"
    if not storage.exists(key):
        key = posixpath.splitext(video_key)[0] + ".json"
        if not storage.exists(key):
            return None
    data = json.loads(storage.read_text(key))
    if not isinstance(data, dict):
        raise ValueError(f"metadata sidecar {storage.url(key)} must hold a JSON object")
    return data


def write_video_predictions(ctx: RunContext, video_key: str, cache_key: str) -> tuple[int, int, dict[int, str]]:
    """One video's prediction files (one per inferred frame), writing only those whose content
    differs: one listing of the video's files instead of a PUT per frame (ETags are content
    hashes on S3). Inference pods call it right after each video, so the per-frame PUTs of a
    fleet run are spread over the inference Job's pods; the convert stage calls it again for
    every video and then only lists and compares (and repairs what a crash left). Returns
    (files, unchanged, categories)."""
    spec = ctx.run.spec
    task = spec.model.task
    res = read_results(ctx.output, cache_key, embeddings=False)
    categories = {int(k): v for k, v in res.manifest["categories"].items()}
    files = frame_predictions(res, categories, spec.output.frame_format)
    items = [(lightly.prediction_key(task, stem), lightly.dumps(doc)) for stem, doc in files]
    stem_prefix = frame_stem(video_key, 0, res.n_frames).rsplit("-", 2)[0] + "-"  # this video's frames
    existing = {o.key: o for o in ctx.output.list(lightly.prediction_folder(task), stem_prefix)}
    changed = [(k, d) for k, d in items if k not in existing or not ctx.output.same_content(k, d, existing[k])]
    ctx.output.write_many(changed, "application/json", workers=spec.output.upload_concurrency)
    log.info("converted %s: %d prediction files", video_key, len(files))
    return len(files), len(items) - len(changed), categories


def convert(ctx: RunContext) -> ConvertOutcome:
    spec = ctx.run.spec
    entries = run_entries(ctx)
    write_failed_videos(ctx, entries)
    failed = failed_videos(entries)
    marker_key = ctx.run_key("convert.json")
    converted = sorted([e.video.key, e.cache_key] for e in entries if e.cache_key)
    state = {"results": converted, "task": spec.model.task, "metadata": spec.metadata.model_dump(mode="json")}
    if ctx.output.exists(marker_key):
        previous = json.loads(ctx.output.read_text(marker_key))
        if {k: previous.get(k) for k in state} == state:
            return ConvertOutcome(previous["predictionFiles"], previous["metadataFiles"], True, failed)

    task = spec.model.task
    workers = spec.output.upload_concurrency
    metadata_keys: dict[str, str] = {}
    for e in entries:
        key = lightly.metadata_key(e.video.key)
        if key in metadata_keys:
            raise ValueError(f"videos {metadata_keys[key]} and {e.video.key} would share metadata file {key}")
        metadata_keys[key] = e.video.key

    prediction_files = unchanged = 0
    categories: dict[int, str] = {}
    for e in entries:
        if not e.cache_key:
            continue
        files, same, categories = write_video_predictions(ctx, e.video.key, e.cache_key)
        prediction_files += files
        unchanged += same

    if categories:
        ctx.output.write_bytes(lightly.task_schema_key(task), lightly.dumps(lightly.prediction_schema(categories)))
        tasks = _existing_tasks(ctx.output) | {task}
        ctx.output.write_bytes(lightly.TASKS_KEY, lightly.dumps(sorted(tasks)), "application/json")

    ctx.output.write_bytes(
        lightly.METADATA_SCHEMA_KEY, lightly.dumps(lightly.metadata_schema(metadata_fields(spec.metadata)))
    )
    meta_items = []
    for e in entries:
        sidecar = _read_sidecar(ctx.input, e.video.key) if spec.metadata.sidecar else None
        doc = lightly.metadata_file(e.video.key, video_metadata(e.video.key, spec.metadata, sidecar))
        lightly.check_metadata_file(doc)
        meta_items.append((lightly.metadata_key(e.video.key), lightly.dumps(doc)))
    ctx.output.write_many(meta_items, "application/json", workers=workers)
    if unchanged:
        log.info("%d prediction files were already written with the same content: left as they were", unchanged)

    marker = {**state, "predictionFiles": prediction_files, "metadataFiles": len(meta_items)}
    ctx.output.write_text(marker_key, json.dumps(marker, indent=1))
    return ConvertOutcome(prediction_files, len(meta_items), False, failed)


def _existing_tasks(storage: Storage) -> set[str]:
    if not storage.exists(lightly.TASKS_KEY):
        return set()
    tasks = json.loads(storage.read_text(lightly.TASKS_KEY))
    return {t for t in tasks if isinstance(t, str)}
