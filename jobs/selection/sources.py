"""Build SelectionData from what is on disk or in a bucket (the I/O edge of the engine).

- framesift's own results (per-video Parquet) + the `.lightly/metadata` files convert wrote;
- a LightlyOne `.lightly/` layout + LightlyOne's embeddings CSV
  (`filenames,embedding_0,…,embedding_{d-1},labels`).
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import hashlib
import io
import json
import logging
import posixpath
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from framesift.jobs import results as results_mod
from framesift.jobs.formats import lightly
from framesift.jobs.results import StoredResults, VideoResults
from framesift.jobs.selection.data import (
    FrameNames,
    MetadataColumn,
    SelectionData,
    TaskPredictions,
    embedding_dtype,
    normalize_rows,
    order_rows,
    parse_frame_name,
)
from framesift.jobs.storage import Storage, prefetch_map

NUMERIC_TYPES = ("NUMERIC_INT", "NUMERIC_FLOAT")
QUALITY_KEYS = {
    "lightly.uniformRowRatio": "uniform_row_ratio",
    "lightly.sharpness": "sharpness",
    "lightly.brightness": "brightness",
}


log = logging.getLogger(__name__)


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


def video_runs(videos: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(video of each run, run lengths) of a column whose rows are grouped by video: per-video
    work then runs once per video, not once per frame."""
    if not len(videos):
        return [], np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, videos[1:] != videos[:-1]])
    counts = np.diff(np.r_[starts, len(videos)])
    return [str(v) for v in videos[starts]], counts


def metadata_columns(
    videos: np.ndarray, schema: list[dict[str, Any]], per_video: dict[str, dict[str, Any]]
) -> dict[str, MetadataColumn]:
    """Every frame inherits its video's metadata; missing values take the schema's default."""
    columns: dict[str, MetadataColumn] = {}
    names, counts = video_runs(videos)
    for entry in schema:
        numeric = entry["valueDataType"] in NUMERIC_TYPES
        by_video = []
        for video in names:
            value = _lookup(per_video.get(video, {}), entry["path"])
            by_video.append(entry["defaultValue"] if value is None else value)
        values = np.empty(len(names), dtype=np.float64 if numeric else object)
        values[:] = by_video
        columns[entry["name"]] = MetadataColumn(np.repeat(values, counts), numeric)
    if "video_name" not in columns and len(videos):
        stems = np.empty(len(names), dtype=object)
        stems[:] = [posixpath.basename(v).rpartition(".")[0] for v in names]
        columns["video_name"] = MetadataColumn(np.repeat(stems, counts), False)
    return columns


# ----- framesift results -----------------------------------------------------------------------


def duplicate_keys(pixel_hashes: np.ndarray) -> np.ndarray:
    """Each frame's pixel hash as 16 bytes ('S16'): the hex strings framesift writes, decoded
    (ten million Python strings would be about 0.8 GB); any other string, hashed to 16 bytes."""
    hashes = [str(h) for h in pixel_hashes.tolist()]
    text = "".join(hashes)
    if len(text) == 32 * len(hashes):
        try:
            return np.frombuffer(bytes.fromhex(text), "S16").copy()
        except ValueError:
            pass
    return np.array([hashlib.blake2b(h.encode(), digest_size=16).digest() for h in hashes], "S16")


@dataclass
class _VideoRows:
    """One video's results, shaped for selection's matrices (made on a loader thread)."""

    video: str
    frame_index: np.ndarray
    quality: tuple[np.ndarray, np.ndarray, np.ndarray]  # uniform row ratio, sharpness, brightness
    duplicate_key: np.ndarray
    embeddings: np.ndarray  # (F, D): raw float32, or unit length in the matrix's dtype
    box_row: np.ndarray  # each box's position among this video's frames
    box_class: np.ndarray
    box_score: np.ndarray
    box_probs: np.ndarray
    box_xywh: np.ndarray
    box_embeddings: np.ndarray | None  # None: these results carry no object embeddings


def _video_rows(res: VideoResults, unit_dtype: type[np.floating] | None) -> _VideoRows:
    frames = res.frame_index.astype(np.int64)
    if len(frames) > 1 and not (np.diff(frames) > 0).all():
        raise SourceError(f"results of {res.video} are not in frame order: infer the video again")
    box_row = np.searchsorted(frames, res.det_frame)
    found = box_row < len(frames)
    found[found] = frames[box_row[found]] == res.det_frame[found]
    if not found.all():
        missing = int(res.det_frame[~found][0])
        raise SourceError(f"results of {res.video}: a box on frame {missing}, which has no frame row")
    objects = res.det_embeddings
    has_objects = objects is not None and objects.shape[1] > 0
    box_embeddings = objects if has_objects or not len(res.det_frame) else None
    emb = res.embeddings
    if unit_dtype is not None:  # reduced precision: unit length first, in float32, then rounded
        emb = normalize_rows(emb).astype(unit_dtype)
        if box_embeddings is not None:
            box_embeddings = normalize_rows(box_embeddings).astype(unit_dtype)
    return _VideoRows(
        res.video,
        frames,
        (res.uniform_row_ratio, res.sharpness, res.brightness),
        duplicate_keys(res.pixel_hash),
        emb,
        box_row.astype(np.int64),
        res.det_class.astype(np.int64),
        res.det_score.astype(np.float64),
        res.det_probs,
        res.det_xywh.astype(np.float32).reshape(-1, 4),
        box_embeddings,
    )


class _Pieces:
    """One column gathered video by video. Every 1 024 videos the small per-video arrays are
    joined into one chunk: fifty thousand videos' small arrays, freed only at the end, would
    stay in the allocator's arenas (a gigabyte at ten million frames) after the join."""

    CHUNK = 1024

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.pending: list[np.ndarray] = []

    def add(self, piece: np.ndarray) -> None:
        self.pending.append(piece)
        if len(self.pending) >= self.CHUNK:
            self.chunks.append(np.concatenate(self.pending))
            self.pending = []

    def join(self) -> np.ndarray:
        """The whole column; the pieces go as soon as it exists."""
        joined = np.concatenate(self.chunks + self.pending)
        self.chunks, self.pending = [], []
        return joined


class _Boxes:
    """Every video's boxes, gathered per video and joined one column at a time at the end."""

    def __init__(self, with_xywh: bool) -> None:
        self.frame, self.cls, self.score, self.probs = _Pieces(), _Pieces(), _Pieces(), _Pieces()
        self.xywh = _Pieces() if with_xywh else None  # outlines serve object DIVERSITY's explanations only
        self.embeddings = _Pieces()
        self.videos_without_objects = 0  # results inferred before framesift stored object embeddings

    def add(self, rows: _VideoRows, offset: int) -> None:
        self.frame.add(rows.box_row + offset)
        self.cls.add(rows.box_class)
        self.score.add(rows.box_score)
        self.probs.add(rows.box_probs)
        if self.xywh is not None:
            self.xywh.add(rows.box_xywh)
        if rows.box_embeddings is None:
            self.videos_without_objects += 1
        elif rows.box_embeddings.shape[0]:
            self.embeddings.add(rows.box_embeddings)

    def predictions(self, categories: dict[int, str], raw_float32: bool) -> TaskPredictions:
        probs = self.probs.join()  # float32 as stored: every score widens it exactly
        return TaskPredictions(
            categories,
            self.frame.join(),
            self.cls.join(),
            self.score.join(),
            None if not len(probs) or np.isnan(probs).all() else probs,
            self._object_matrix(raw_float32),
            self.xywh.join() if self.xywh is not None else None,
        )

    def _object_matrix(self, raw_float32: bool) -> np.ndarray | None:
        """All videos' object embeddings as one unit-length matrix; None when any video's
        results have none."""
        if self.videos_without_objects:
            return None
        if not self.embeddings.chunks and not self.embeddings.pending:
            return np.zeros((0, 0), np.float32)
        joined = self.embeddings.join()
        return normalize_rows(joined) if raw_float32 else joined


class _FrameColumns:
    """Selection's per-frame arrays, allocated once for every video's rows and filled video by
    video: peak memory is the matrix plus one video, not every video twice."""

    def __init__(self, n: int, dtype: type[np.floating]):
        self.n = n
        self.dtype = dtype  # of the embedding matrix
        self.frame_index = np.empty(n, np.int64)
        # float32 as stored; strategies widen metadata to float64 when they read it
        self.quality = tuple(np.empty(n, np.float32) for _ in range(3))
        self.duplicate_key = np.empty(n, "S16")
        self.embeddings: np.ndarray | None = None

    def fill(self, rows: _VideoRows, at: int) -> None:
        span = slice(at, at + len(rows.frame_index))
        self.frame_index[span] = rows.frame_index
        for column, values in zip(self.quality, rows.quality, strict=True):
            column[span] = values
        self.duplicate_key[span] = rows.duplicate_key
        if len(rows.frame_index):
            if self.embeddings is None:
                self.embeddings = np.empty((self.n, rows.embeddings.shape[1]), self.dtype)
            elif rows.embeddings.shape[1] != self.embeddings.shape[1]:
                raise SourceError(
                    f"results of {rows.video} have {rows.embeddings.shape[1]}-d embeddings, the other videos' "
                    f"{self.embeddings.shape[1]}-d: a run's videos must be inferred with one model"
                )
            self.embeddings[span] = rows.embeddings


def _return_freed_memory() -> None:
    """Hand the loader threads' freed blocks back to the system: glibc keeps them in per-thread
    arenas, where they would count against the pod's memory while the engine runs. Elsewhere
    (no glibc) nothing to do."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def from_results(
    all_results: Sequence[VideoResults | StoredResults],
    task: str,
    corruption_threshold: float,
    metadata_schema: list[dict[str, Any]] | None = None,
    metadata_by_video: dict[str, dict[str, Any]] | None = None,
    frame_format: str = "png",
    embeddings: bool = True,
    objects: bool = True,
    workers: int = 8,
) -> SelectionData:
    """SelectionData from per-video results, in (video path, frame index) order.

    Stored results are read `workers` at a time and copied into matrices allocated once; frame
    embeddings are float32 up to FLOAT32_LIMIT_BYTES and unit-length float16 above it.
    `objects=False` leaves object embeddings unread (only object-level DIVERSITY needs them),
    `embeddings=False` frame embeddings too (what only reads predictions and scores)."""
    ordered = sorted(all_results, key=lambda r: r.video)
    counts = np.array([r.frame_count for r in ordered], np.int64)
    n = int(counts.sum())
    if not n:
        raise SourceError("no inferred frames to select from (every video failed?)")
    dtype = embedding_dtype(n, max(r.embedding_dim for r in ordered) if embeddings else 0)
    unit_dtype = None if dtype == np.float32 else dtype
    categories = {int(k): v for k, v in ordered[0].manifest["categories"].items()}
    columns = _FrameColumns(n, dtype)
    boxes = _Boxes(with_xywh=objects)

    def prepare(handle: VideoResults | StoredResults) -> _VideoRows:
        return _video_rows(handle.load(embeddings=embeddings, objects=objects), unit_dtype)

    offset = 0
    report_every = max(1, len(ordered) // 20)
    for done, (handle, rows) in enumerate(zip(ordered, prefetch_map(prepare, ordered, workers), strict=True), 1):
        if len(rows.frame_index) != handle.frame_count:
            raise SourceError(
                f"results of {handle.video}: {len(rows.frame_index)} frame rows, its manifest says "
                f"{handle.frame_count}: infer the video again"
            )
        columns.fill(rows, offset)
        boxes.add(rows, offset)
        offset += len(rows.frame_index)
        if done % report_every == 0 and len(ordered) >= 1000:
            log.info("read %d of %d videos' results (%d frames)", done, len(ordered), offset)
    matrix = columns.embeddings if columns.embeddings is not None else np.zeros((n, 0), np.float32)
    if unit_dtype is None:
        matrix = normalize_rows(matrix)  # in place: the same bits as every earlier release
    videos = np.empty(len(ordered), dtype=object)
    videos[:] = [r.video for r in ordered]
    video_col = np.repeat(videos, counts)
    ratio, sharpness, brightness = columns.quality
    corrupt = ratio.astype(np.float64) > corruption_threshold  # compared as before: in float64
    metadata = metadata_columns(video_col, metadata_schema or [], metadata_by_video or {})
    metadata["lightly.uniformRowRatio"] = MetadataColumn(ratio, True)
    metadata["lightly.sharpness"] = MetadataColumn(sharpness, True)
    metadata["lightly.brightness"] = MetadataColumn(brightness, True)
    predictions = {task: boxes.predictions(categories, raw_float32=unit_dtype is None)}
    _return_freed_memory()
    return SelectionData(
        file_names=FrameNames(video_col, columns.frame_index, {r.video: r.n_frames for r in ordered}, frame_format),
        videos=video_col,
        frame_index=columns.frame_index,
        embeddings=matrix,
        corrupt=corrupt,
        duplicate_key=columns.duplicate_key,
        predictions=predictions,
        metadata=metadata,
        corrupt_reasons={f"uniformRowRatio > {corruption_threshold}": int(corrupt.sum())},
    )


def latest_results(storage: Storage, workers: int = 16) -> list[StoredResults]:
    """Every video's newest finished results under `.framesift/videos/` (framesift's own results
    given in place of an embeddings CSV), manifests read concurrently, results left unread."""
    markers = [obj for obj in storage.list(results_mod.ROOT + "/videos") if obj.key.endswith("/video.json")]
    manifests = prefetch_map(lambda obj: json.loads(storage.read_text(obj.key)), markers, workers)
    newest: dict[str, tuple[float, StoredResults]] = {}
    for obj, manifest in zip(markers, manifests, strict=True):
        handle = StoredResults(storage, obj.key.split("/")[-2], manifest)
        if handle.video not in newest or (obj.mtime or 0) > newest[handle.video][0]:
            newest[handle.video] = (obj.mtime or 0, handle)
    return sorted((handle for _, handle in newest.values()), key=lambda h: h.key)


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
