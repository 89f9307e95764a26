"""A LightlyOne run's tag → framesift's selection documents, in the builtin engine's shapes.

Export, the report and `.status` then read one format whatever the engine. Each pick keeps
LightlyOne's own readUrl and datasourceUrl for export.json; its scores are framesift's
active-learning scores of that frame (LightlyOne does not return its own per frame).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from framesift.jobs.collect import load_ok_results, run_entries
from framesift.jobs.context import RunContext
from framesift.jobs.selection.sources import from_results, read_metadata

REPORT_PDF = "lightlyone-report.pdf"


class UnknownFrames(ValueError):
    """The tag names no frame of this run."""


def selection_document(ctx: RunContext, rows: list[dict[str, str]], tag: str, ids: dict[str, Any]) -> dict[str, Any]:
    spec = ctx.run.spec
    schema, per_video = read_metadata(ctx.output)
    data = from_results(
        load_ok_results(ctx, run_entries(ctx)),
        spec.model.task,
        spec.quality.corruption_threshold,
        schema,
        per_video,
        spec.output.frame_format,
        embeddings=False,  # the document carries scores, not embeddings
        objects=False,
    )
    index = data.rows_of(row["fileName"] for row in rows)
    scores = data.predictions[spec.model.task].scores(len(data))
    picks, elsewhere = [], []
    for row in rows:
        i = index.get(row["fileName"])
        if i is None:  # a frame of an earlier run in the same dataset (datapool)
            elsewhere.append(row["fileName"])
            continue
        picks.append(
            {
                "fileName": row["fileName"],
                "video": str(data.videos[i]),
                "frameIndex": int(data.frame_index[i]),
                "scores": {f"{spec.model.task}:{name}": round(float(values[i]), 6) for name, values in scores.items()},
                "lightlyone": {"readUrl": row.get("readUrl", ""), "datasourceUrl": row.get("datasourceUrl", "")},
            }
        )
    if rows and not picks:
        raise UnknownFrames(
            f"LightlyOne's tag {tag!r} holds {len(rows)} frames, none of this run's (e.g. {rows[0]['fileName']!r}): "
            "does spec.selector.datasetName name a dataset of other videos?"
        )
    corrupt = int(data.corrupt.sum())
    requested = spec.selection.n_samples if spec.selection else None
    return {
        "engine": "lightlyone",
        "tag": tag,
        "selected": picks,
        "stoppedBecause": f"LightlyOne run {ids.get('runId')} {ids.get('state')}",
        "candidates": len(data) - corrupt,
        "requested": requested,
        "filtered": {"corrupt": corrupt},
        "datapool": len(elsewhere),
        "lightlyone": ids,
        "frames": len(data),
        "run": ctx.name,
        "corrupt": data.corrupt_reasons,
    }


def write_selection(ctx: RunContext, document: dict[str, Any], report_pdf: bytes | None) -> None:
    """The same files the builtin engine writes, plus LightlyOne's own report beside framesift's."""
    from framesift.jobs.select import selection_key

    state = {"lightlyone": hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()}
    if report_pdf is not None:
        ctx.output.write_bytes(ctx.person_key(REPORT_PDF), report_pdf, "application/pdf")
    ctx.output.write_text(selection_key(ctx), json.dumps({"state": state, "selection": document}, indent=1))
    ctx.output.write_text(ctx.person_key("selected.json"), json.dumps(document, indent=1))
