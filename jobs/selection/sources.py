"""Build SelectionData from what is on disk or in a bucket (the I/O edge of the engine).

- framesift's own results (per-video Parquet) + the `.lightly/metadata` files convert wrote;
- a LightlyOne `.lightly/` layout + LightlyOne's embeddings CSV
  (`filenames,embedding_0,…,embedding_{d-1},labels`).
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from framesift.jobs import results as results_mod
from framesift.jobs.formats import lightly
from framesift.jobs.results import VideoResults
from framesift.jobs.selection.data import (
    MetadataColumn,
    SelectionData,
    TaskPredictions,
    normalize_rows,
    order_rows,
    parse_frame_name,
)
from framesift.jobs.storage import Storage
from framesift.jobs.video import frame_name

NUMERIC_TYPES = ("NUMERIC_INT", "NUMERIC_FLOAT")
QUALITY_KEYS = {
    "lightly.uniformRowRatio": "uniform_row_ratio",
    "lightly.sharpness": "sharpness",
    "lightly.brightness": "brightness",
}


class SourceError(RuntimeError):
    """Input files for selection that are missing or malformed."""


# ----- metadata ------------------------------------------------------------------------------


def read_metadata(storage: Storage) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(schema, {video path: metadata}) from `.lightly/metadata/`; empty when absent."""
    if not storage.exists(lightly.METADATA_SCHEMA_KEY):
        return [], {}
    schema = json.loads(storage.read_text(lightly.METADATA_SCHEMA_KEY))
    lightly.check_metadata_schema(schema)
    per_video: dict[str, dict[str, Any]] = {}
    for obj in storage.list(".lightly/metadata"):
        if obj.key == lightly.METADATA_SCHEMA_KEY or not obj.key.endswith(".json"):
            continue
        doc = json.loads(storage.read_text(obj.key))
        lightly.check_metadata_file(doc)
        per_video[doc["file_name"]] = doc["metadata"]
    return schema, per_video


def _lookup(meta: dict[str, Any], path: str) -> Any:
    value: Any = meta
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def metadata_columns(
    videos: np.ndarray, schema: list[dict[str, Any]], per_video: dict[str, dict[str, Any]]
) -> dict[str, MetadataColumn]:
    """Every frame inherits its video's metadata; missing values take the schema's default."""
    columns: dict[str, MetadataColumn] = {}
    unique_videos = sorted(set(videos.tolist()))
    for entry in schema:
        numeric = entry["valueDataType"] in NUMERIC_TYPES
        by_video = {}
        for video in unique_videos:
            value = _lookup(per_video.get(video, {}), entry["path"])
            by_video[video] = entry["defaultValue"] if value is None else value
        values = np.array([by_video[v] for v in videos.tolist()], dtype=np.float64 if numeric else object)
        columns[entry["name"]] = MetadataColumn(values, numeric)
    if "video_name" not in columns and len(videos):
        stems = np.array([posixpath.basename(v).rpartition(".")[0] for v in videos.tolist()], dtype=object)
        columns["video_name"] = MetadataColumn(stems, False)
    return columns


# ----- framesift results -----------------------------------------------------------------------


def _probs_matrix(probs: list[np.ndarray | None], k: int) -> np.ndarray | None:
    if not probs or all(p is None for p in probs):
        return None
    out = np.full((len(probs), k), np.nan)
    for b, p in enumerate(probs):
        if p is not None and len(p) == k:
            out[b] = p
    return out


def _object_matrix(per_video: list[np.ndarray | None]) -> np.ndarray | None:
    """All videos' object embeddings as one unit-length matrix; None when any video's results
    have none (inferred before framesift stored them)."""
    if any(m is None for m in per_video):
        return None
    present = [m for m in per_video if m is not None and m.shape[0]]
    if not present:
        return np.zeros((0, 0), np.float32)
    return normalize_rows(np.concatenate(present))


def from_results(
    all_results: list[VideoResults],
    task: str,
    corruption_threshold: float,
    metadata_schema: list[dict[str, Any]] | None = None,
    metadata_by_video: dict[str, dict[str, Any]] | None = None,
    frame_format: str = "png",
) -> SelectionData:
    """SelectionData from per-video results, in (video path, frame index) order."""
    ordered = sorted(all_results, key=lambda r: r.video)
    names: list[str] = []
    videos, frames, embs, ratios, sharp, bright, hashes = [], [], [], [], [], [], []
    box_frame, box_class, box_score, box_probs = [], [], [], []
    box_embs: list[np.ndarray | None] = []
    box_xywh: list[np.ndarray] = []
    categories: dict[int, str] = {}
    offset = 0
    for res in ordered:
        categories = categories or {int(k): v for k, v in res.manifest["categories"].items()}
        count = len(res.frame_index)
        names.extend(frame_name(res.video, int(i), res.n_frames, frame_format) for i in res.frame_index)
        videos.append(np.full(count, res.video, dtype=object))
        frames.append(res.frame_index.astype(np.int64))
        embs.append(res.embeddings)
        ratios.append(res.uniform_row_ratio)
        sharp.append(res.sharpness)
        bright.append(res.brightness)
        hashes.append(res.pixel_hash)
        row_of = {int(f): offset + j for j, f in enumerate(res.frame_index)}
        box_frame.append(np.array([row_of[int(f)] for f in res.det_frame], np.int64))
        box_class.append(res.det_class.astype(np.int64))
        box_score.append(res.det_score.astype(np.float64))
        box_probs.extend(res.det_probs)
        box_xywh.append(res.det_xywh.astype(np.float32).reshape(-1, 4))
        has_objects = res.det_embeddings is not None and res.det_embeddings.shape[1] > 0
        box_embs.append(res.det_embeddings if has_objects or not len(res.det_frame) else None)
        offset += count
    if not names:
        raise SourceError("no inferred frames to select from (every video failed?)")
    video_col = np.concatenate(videos)
    ratio = np.concatenate(ratios).astype(np.float64)
    corrupt = ratio > corruption_threshold
    preds = TaskPredictions(
        categories,
        np.concatenate(box_frame),
        np.concatenate(box_class),
        np.concatenate(box_score),
        _probs_matrix(box_probs, len(categories)),
        _object_matrix(box_embs),
        np.concatenate(box_xywh) if box_xywh else np.zeros((0, 4), np.float32),
    )
    metadata = metadata_columns(video_col, metadata_schema or [], metadata_by_video or {})
    metadata["lightly.uniformRowRatio"] = MetadataColumn(ratio, True)
    metadata["lightly.sharpness"] = MetadataColumn(np.concatenate(sharp).astype(np.float64), True)
    metadata["lightly.brightness"] = MetadataColumn(np.concatenate(bright).astype(np.float64), True)
    return SelectionData(
        file_names=names,
        videos=video_col,
        frame_index=np.concatenate(frames),
        embeddings=normalize_rows(np.concatenate(embs)),
        corrupt=corrupt,
        duplicate_key=np.concatenate(hashes),
        predictions={task: preds},
        metadata=metadata,
        corrupt_reasons={f"uniformRowRatio > {corruption_threshold}": int(corrupt.sum())},
    )


def latest_results(storage: Storage) -> list[VideoResults]:
    """Every video's newest finished results under `.framesift/videos/` (framesift's own results
    given in place of an embeddings CSV)."""
    newest: dict[str, tuple[float, str]] = {}
    for obj in storage.list(results_mod.ROOT + "/videos"):
        if not obj.key.endswith("/video.json"):
            continue
        key = obj.key.split("/")[-2]
        manifest = json.loads(storage.read_text(obj.key))
        if manifest["video"] not in newest or (obj.mtime or 0) > newest[manifest["video"]][0]:
            newest[manifest["video"]] = (obj.mtime or 0, key)
    return [results_mod.read_results(storage, key) for _, key in sorted(newest.values(), key=lambda t: t[1])]


# ----- LightlyOne layout + embeddings CSV ----------------------------------------------------


def read_embeddings_csv(text: str) -> tuple[list[str], np.ndarray]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or header[0] != "filenames" or not header[1].startswith("embedding_"):
        raise SourceError("embeddings CSV must start with the header filenames,embedding_0,...,labels")
    dims = [i for i, h in enumerate(header) if h.startswith("embedding_")]
    names: list[str] = []
    rows: list[list[float]] = []
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            rows.append([float(row[i]) for i in dims])
        except (ValueError, IndexError):
            raise SourceError(f"embeddings CSV line {line_no}: expected {len(dims)} numbers") from None
        names.append(row[0])
    return names, np.asarray(rows, np.float32).reshape(len(rows), len(dims))


def read_task(storage: Storage, task: str) -> tuple[dict[int, str], dict[str, list[dict[str, Any]]]]:
    """(categories, {frame file name: predictions}) of one task."""
    schema_key = lightly.task_schema_key(task)
    if not storage.exists(schema_key):
        raise SourceError(f"no task {task!r}: {storage.url(schema_key)} is missing")
    schema = json.loads(storage.read_text(schema_key))
    lightly.check_prediction_schema(schema)
    categories = {int(c["id"]): c["name"] for c in schema["categories"]}
    keys = [
        o.key for o in storage.list(f".lightly/predictions/{task}") if o.key != schema_key and o.key.endswith(".json")
    ]
    with ThreadPoolExecutor(max_workers=16) as pool:
        docs = list(pool.map(lambda k: json.loads(storage.read_text(k)), keys))
    per_frame: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        lightly.check_prediction_file(doc, set(categories))
        per_frame[doc["file_name"]] = doc["predictions"]
    return categories, per_frame


def read_tasks(storage: Storage) -> list[str]:
    if not storage.exists(lightly.TASKS_KEY):
        raise SourceError(f"{storage.url(lightly.TASKS_KEY)} is missing: not a LightlyOne layout")
    tasks = json.loads(storage.read_text(lightly.TASKS_KEY))
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise SourceError("tasks.json must be a JSON list of task names")
    return tasks


def task_predictions(
    categories: dict[int, str], per_frame: dict[str, list[dict[str, Any]]], row_of: dict[str, int]
) -> TaskPredictions:
    ids = sorted(categories)
    frame, cls, score, probs = [], [], [], []
    for name, preds in per_frame.items():
        row = row_of.get(name)
        if row is None:
            continue
        for p in preds:
            frame.append(row)
            cls.append(int(p["category_id"]))
            score.append(float(p["score"]))
            given = p.get("probabilities")
            probs.append(given if given is not None and len(given) == len(ids) else [np.nan] * len(ids))
    probs_arr = np.asarray(probs, np.float64).reshape(len(probs), len(ids)) if probs else None
    if probs_arr is not None and np.isnan(probs_arr).all():
        probs_arr = None
    return TaskPredictions(
        categories, np.asarray(frame, np.int64), np.asarray(cls, np.int64), np.asarray(score, np.float64), probs_arr
    )


def from_lightly(
    storage: Storage, names: list[str], embeddings: np.ndarray | None, extra: dict[str, np.ndarray] | None = None
) -> SelectionData:
    """Frames are the rows of the embeddings (or every predicted frame when there are none)."""
    parsed = [parse_frame_name(n) for n in names]
    videos = [p[0] if p else posixpath.dirname(n) or n for p, n in zip(parsed, names, strict=True)]
    index = [p[1] if p else i for i, p in enumerate(parsed)]
    order = order_rows(videos, index)
    names = [names[i] for i in order]
    video_col = np.asarray([videos[i] for i in order], dtype=object)
    frame_idx = np.asarray([index[i] for i in order], np.int64)
    emb = normalize_rows(embeddings[order]) if embeddings is not None else None
    row_of = {n: i for i, n in enumerate(names)}
    predictions = {}
    for task in read_tasks(storage):
        categories, per_frame = read_task(storage, task)
        predictions[task] = task_predictions(categories, per_frame, row_of)
    schema, per_video = read_metadata(storage)
    data = SelectionData(
        file_names=names,
        videos=video_col,
        frame_index=frame_idx,
        embeddings=emb,
        corrupt=np.zeros(len(names), bool),
        predictions=predictions,
        metadata=metadata_columns(video_col, schema, per_video),
    )
    for key, values in (extra or {}).items():
        data.metadata[key] = MetadataColumn(values[order], True)
    return data


def frames_of_tasks(storage: Storage) -> list[str]:
    """Every frame that has a prediction file, when no embeddings say which frames exist."""
    seen: set[str] = set()
    for task in read_tasks(storage):
        _, per_frame = read_task(storage, task)
        seen.update(per_frame)
    return sorted(seen)


def read_datapool(text: str) -> list[str]:
    """Earlier selections: a JSON list of names, a selected.json or an export.json."""
    doc = json.loads(text)
    items: Iterable[Any] = doc.get("selected", []) if isinstance(doc, dict) else doc
    out = []
    for item in items:
        out.append(item if isinstance(item, str) else item["fileName"])
    return out
