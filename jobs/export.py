"""Stage 4: only the selected frames, ready for labelling, with a report that shows why.

Decodes just the selected frames (sorted, forward sweep, keyframe seeks where cheaper) into
`<output>/frames/<frame name>.png`, then writes to `runs/<run>/`: export.json (LightlyOne's
`export_filenames_and_read_urls_by_tag_name` shape), labelstudio.json (+ its labelling config),
coco.json, report.html and report.pdf. The marker goes last; a rerun over the same selection
changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from framesift.jobs.collect import StageOrderError, load_ok_results, run_entries
from framesift.jobs.context import InputError, RunContext
from framesift.jobs.formats import coco, labelstudio
from framesift.jobs.formats.detections import Box, FrameRecord
from framesift.jobs.published import ReplacedVideo, check_not_replaced, record_published
from framesift.jobs.results import StoredResults, VideoResults
from framesift.jobs.storage import prefetch_map, process_temp_dir
from framesift.jobs.video import extract_frames

log = logging.getLogger(__name__)


@dataclass
class ExportOutcome:
    frames: int
    export_uri: str
    report_uri: str
    files: dict[str, str]
    skipped: bool


def frame_key(file_name: str) -> str:
    return f"frames/{file_name}"


def _boxes(res: VideoResults) -> dict[int, list[Box]]:
    out: dict[int, list[Box]] = defaultdict(list)
    for b in range(len(res.det_score)):
        x, y, w, h = (float(v) for v in res.det_xywh[b])
        out[int(res.det_frame[b])].append(Box(int(res.det_class[b]), (x, y, w, h), float(res.det_score[b])))
    return out


def worker_frame_key(file_name: str) -> str:
    """Where a LightlyOne Worker leaves a selected frame in its LIGHTLY datasource (the output)."""
    return f".lightly/frames/{file_name}"


def _copy_worker_frames(ctx: RunContext, picks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy the frames a LightlyOne Worker already extracted; returns the picks still to decode."""
    rest, items = [], []
    for pick in picks:
        key = worker_frame_key(pick["fileName"])
        if "lightlyone" in pick and ctx.output.exists(key):
            items.append((frame_key(pick["fileName"]), ctx.output.read_bytes(key)))
        else:
            rest.append(pick)
    if items:
        ctx.output.write_many(items, "image/png", workers=8)
    return rest


def _write_frames(
    ctx: RunContext, by_video: dict[str, list[dict[str, Any]]], results: dict[str, StoredResults]
) -> None:
    for video, all_picks in by_video.items():
        res = results[video]
        picks = _copy_worker_frames(ctx, all_picks)
        if not picks:
            continue
        local = ctx.input.local_path(video)
        with tempfile.TemporaryDirectory(dir=process_temp_dir(), prefix="export-") as tmp:
            path = local if local is not None else ctx.input.download(video, Path(tmp) / Path(video).name)
            names = {p["frameIndex"]: p["fileName"] for p in picks}
            items = []
            for index, image in extract_frames(path, sorted(names), decode_errors=bool(res.manifest["decodeErrors"])):
                ok, png = cv2.imencode(".png", image)
                if not ok:
                    raise RuntimeError(f"PNG encoding failed for {names[index]}")
                items.append((frame_key(names[index]), png.tobytes()))
            if len(items) != len(names):
                raise RuntimeError(f"{video}: extracted {len(items)} of {len(names)} selected frames")
            ctx.output.write_many(items, "image/png", workers=8)
        log.info("exported %d frames of %s", len(picks), video)


def run_export(ctx: RunContext, stage_seconds: dict[str, float] | None = None) -> ExportOutcome:
    from framesift.jobs.report import write_report
    from framesift.jobs.select import selection_key

    spec = ctx.run.spec
    if not ctx.output.exists(selection_key(ctx)):
        raise StageOrderError("no selection for this run yet: run select first")
    selection_doc = json.loads(ctx.output.read_text(selection_key(ctx)))
    selection = selection_doc["selection"]
    expiry = spec.export.url_expiry_seconds
    formats = sorted(set(spec.export.formats))
    state = {
        "selection": hashlib.sha256(json.dumps(selection, sort_keys=True).encode()).hexdigest(),
        "formats": formats,
        "urlExpiry": spec.export.url_expiry,
    }
    marker_key = ctx.run_key("export.json")
    if ctx.output.exists(marker_key):
        marker = json.loads(ctx.output.read_text(marker_key))
        if marker.get("state") == state and all(ctx.output.exists(k) for k in marker["files"].values()):
            return ExportOutcome(marker["frames"], marker["exportUri"], marker["reportUri"], marker["files"], True)

    started = time.monotonic()
    entries = run_entries(ctx)
    all_results = load_ok_results(ctx, entries)
    results = {r.video: r for r in all_results}
    by_video: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pick in selection["selected"]:
        by_video[pick["video"]].append(pick)
    picked_videos = [e.video for e in entries if e.video.key in by_video]
    try:  # a run started from a stored list did not list the input itself: check here too
        check_not_replaced(ctx.output, picked_videos)
    except ReplacedVideo as err:
        raise InputError(str(err)) from None
    _write_frames(ctx, by_video, results)
    record_published(ctx.output, picked_videos, ctx.name)

    categories = {int(k): v for k, v in all_results[0].manifest["categories"].items()} if all_results else {}
    picked = [results[video] for video in sorted(by_video)]  # boxes of the picked videos only
    boxes = {r.video: _boxes(r) for r in prefetch_map(lambda h: h.load(embeddings=False), picked)}
    records = []
    for pick in selection["selected"]:
        res = results[pick["video"]]
        key = frame_key(pick["fileName"])
        records.append(
            FrameRecord(
                pick["fileName"],
                pick["video"],
                pick["frameIndex"],
                int(res.manifest["width"]),
                int(res.manifest["height"]),
                ctx.output.read_url(key, expiry),
                ctx.output.url(key),
                boxes[pick["video"]].get(pick["frameIndex"], []),
                pick["scores"],
                [obj for objects in pick.get("novelObjects", {}).values() for obj in objects],
            )
        )

    files: dict[str, str] = {"selected": ctx.person_key("selected.json")}
    # LightlyOne's own URLs for its picks (as export_filenames_and_read_urls_by_tag_name gives them)
    export_rows = [
        {
            "fileName": r.file_name,
            "readUrl": r.read_url,
            "datasourceUrl": r.datasource_url,
            **pick.get("lightlyone", {}),
        }
        for r, pick in zip(records, selection["selected"], strict=True)
    ]
    files["export"] = ctx.person_key("export.json")
    ctx.output.write_text(files["export"], json.dumps(export_rows, indent=1))
    model_version = (
        f"{spec.model.weights}@{results[records[0].video].manifest['model']['fingerprint'][:12]}"
        if records
        else spec.model.weights
    )
    if "labelstudio" in formats:
        files["labelstudio"] = ctx.person_key("labelstudio.json")
        ctx.output.write_text(
            files["labelstudio"], json.dumps(labelstudio.tasks(records, categories, model_version), indent=1)
        )
        files["labelstudioConfig"] = ctx.person_key("labelstudio.xml")
        ctx.output.write_text(files["labelstudioConfig"], labelstudio.labeling_config(categories), "application/xml")
    if "coco" in formats:
        files["coco"] = ctx.person_key("coco.json")
        ctx.output.write_text(files["coco"], json.dumps(coco.coco(records, categories, f"framesift run {ctx.name}")))

    timings = dict(stage_seconds or {})
    timings["export (frames)"] = time.monotonic() - started
    report_files = write_report(ctx, entries, all_results, selection_doc, records, categories, timings)
    files.update(report_files)
    outcome = ExportOutcome(
        len(records), ctx.output.url(files["export"]), ctx.output.url(files["reportHtml"]), files, skipped=False
    )
    marker = {
        "state": state,
        "frames": outcome.frames,
        "exportUri": outcome.export_uri,
        "reportUri": outcome.report_uri,
        "files": files,
    }
    ctx.output.write_text(marker_key, json.dumps(marker, indent=1))
    return outcome
