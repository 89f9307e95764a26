"""framesift's own per-video results under `<output>/.framesift/`, columnar (Parquet).

    .framesift/videos/<cache key>/frames.parquet      one row per inferred frame: index, time,
                                                      quality, pixel hash, embedding (float32)
    .framesift/videos/<cache key>/detections.parquet  one row per kept box, with its object
                                                      embedding (float32)
    .framesift/videos/<cache key>/video.json          the completion marker, written last
    .framesift/runs/<run>/videos/<video id>.json      which cache entry (or failure) this run used

The cache key is a hash of the video's content identity (ETag or size+mtime) and everything
that changes the results (model fingerprint and inference settings), so a later run over the
same bucket only infers new or changed videos.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from framesift.api.models import ModelSpec
from framesift.jobs.storage import ObjectInfo, Storage, join_key, prefetch_map

RESULTS_VERSION = 2  # 2: object embeddings in detections.parquet
ROOT = ".framesift"


def cache_key(video: ObjectInfo, model_fingerprint: str, spec: ModelSpec) -> str:
    settings = {
        "version": RESULTS_VERSION,
        "video": video.key,
        "identity": video.identity,
        "model": model_fingerprint,
        "conf": spec.conf,
        "iou": spec.iou,
        "imgsz": spec.imgsz,
        "classes": sorted((spec.classes or {}).items()),
        "frameStride": spec.frame_stride,
        "maxDet": spec.max_det,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]


def video_id(video_key: str) -> str:
    return hashlib.sha1(video_key.encode()).hexdigest()[:16]


def result_prefix(key: str) -> str:
    return join_key(ROOT, "videos", key)


def pointer_key(run_name: str, video_key: str) -> str:
    return join_key(ROOT, "runs", run_name, "videos", f"{video_id(video_key)}.json")


class _FromManifest:
    """What a video's manifest says, for results read or not."""

    manifest: dict[str, Any]

    @property
    def video(self) -> str:
        return str(self.manifest["video"])

    @property
    def n_frames(self) -> int:
        """All decoded frames (names are padded to this count), not only the inferred ones."""
        return int(self.manifest["frames"])


@dataclass
class VideoResults(_FromManifest):
    """One video's inference results, as arrays (column-wise)."""

    manifest: dict[str, Any]
    frame_index: np.ndarray  # (F,) int32
    time_s: np.ndarray  # (F,) float64
    uniform_row_ratio: np.ndarray  # (F,) float32
    sharpness: np.ndarray
    brightness: np.ndarray
    pixel_hash: np.ndarray  # (F,) object (hex str)
    embeddings: np.ndarray  # (F, D) float32
    det_frame: np.ndarray  # (B,) int32 frame index of each box
    det_class: np.ndarray  # (B,) int32 category id
    det_xywh: np.ndarray  # (B, 4) float32
    det_score: np.ndarray  # (B,) float32
    det_probs: np.ndarray  # (B, K) float32 over the kept categories; NaN rows: none stored
    det_embeddings: np.ndarray | None = None  # (B, D) float32 object embeddings; None when not read

    @property
    def frame_count(self) -> int:
        """Inferred frames: the rows these results give selection."""
        return len(self.frame_index)

    @property
    def embedding_dim(self) -> int:
        return int(self.embeddings.shape[1])

    def load(self, embeddings: bool = True, objects: bool = True) -> VideoResults:
        """Already in memory (the same interface as StoredResults)."""
        return self


@dataclass(frozen=True)
class StoredResults(_FromManifest):
    """One video's finished results, not yet read: its manifest only. Selection over fifty
    thousand videos reads them one at a time into its matrices instead of all at once."""

    storage: Storage
    key: str
    manifest: dict[str, Any]

    @property
    def frame_count(self) -> int:
        return int(self.manifest["inferredFrames"])

    @property
    def embedding_dim(self) -> int:
        return int(self.manifest.get("embeddingDim") or 0)

    def load(self, embeddings: bool = True, objects: bool = True) -> VideoResults:
        return read_results(self.storage, self.key, embeddings, self.manifest, objects)


def stored_results(storage: Storage, keys: Sequence[str], workers: int = 16) -> list[StoredResults]:
    """The finished results of these cache keys, manifests read concurrently (one small object
    per video: fifty thousand round trips one after the other would take minutes)."""

    def one(key: str) -> StoredResults:
        manifest = read_manifest(storage, key)
        if manifest is None:
            raise FileNotFoundError(f"no finished results for cache key {key} in {storage.uri}")
        return StoredResults(storage, key, manifest)

    return list(prefetch_map(one, keys, workers))


def _matrix_column(matrix: np.ndarray, rows: int, dim: int) -> pa.Array:
    """A (rows, dim) float32 matrix as one fixed-size-list column (nulls when dim is 0). The dim
    is passed, not read from the matrix, so a row group with no rows keeps the file's schema."""
    if not dim:
        return pa.nulls(rows)
    flat = pa.array(np.asarray(matrix, np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, dim)


def _read_matrix(column: pa.ChunkedArray, rows: int) -> np.ndarray:
    if pa.types.is_fixed_size_list(column.type):
        flat = column.combine_chunks()
        matrix = flat.values.to_numpy(zero_copy_only=False).reshape(len(flat), flat.type.list_size)
        return matrix.astype(np.float32, copy=False)
    return np.zeros((rows, 0), np.float32)


def frames_table(
    frame_index: np.ndarray,
    pts: np.ndarray,
    time_s: np.ndarray,
    quality: np.ndarray,
    pixel_hash: list[str],
    embeddings: np.ndarray,
) -> pa.Table:
    return pa.table(
        {
            "frame_index": pa.array(frame_index, pa.int32()),
            "pts": pa.array(pts, pa.int64()),
            "time_s": pa.array(time_s, pa.float64()),
            "uniform_row_ratio": pa.array(quality[:, 0], pa.float32()),
            "sharpness": pa.array(quality[:, 1], pa.float32()),
            "brightness": pa.array(quality[:, 2], pa.float32()),
            "pixel_hash": pa.array(pixel_hash, pa.string()),
            "embedding": _matrix_column(
                embeddings, len(frame_index), embeddings.shape[1] if embeddings.ndim == 2 else 0
            ),
        }
    )


def detections_table(
    frame: np.ndarray,
    category: np.ndarray,
    xywh: np.ndarray,
    score: np.ndarray,
    probs: list[np.ndarray | None],
    embeddings: np.ndarray,
    embedding_dim: int,
) -> pa.Table:
    return pa.table(
        {
            "frame_index": pa.array(frame, pa.int32()),
            "category_id": pa.array(category, pa.int32()),
            "x": pa.array(xywh[:, 0], pa.float32()),
            "y": pa.array(xywh[:, 1], pa.float32()),
            "w": pa.array(xywh[:, 2], pa.float32()),
            "h": pa.array(xywh[:, 3], pa.float32()),
            "score": pa.array(score, pa.float32()),
            "probabilities": pa.array(
                [None if p is None else p.astype(np.float32).tolist() for p in probs], pa.list_(pa.float32())
            ),
            "embedding": _matrix_column(embeddings, len(frame), embedding_dim),
        }
    )


def write_manifest(storage: Storage, key: str, manifest: dict[str, Any]) -> None:
    """Publish the completion marker: only after both Parquet files are in place."""
    storage.write_text(join_key(result_prefix(key), "video.json"), json.dumps(manifest, indent=1))


def read_manifest(storage: Storage, key: str) -> dict[str, Any] | None:
    marker = join_key(result_prefix(key), "video.json")
    if not storage.exists(marker):
        return None
    manifest: dict[str, Any] = json.loads(storage.read_text(marker))
    return manifest


FRAME_COLUMNS = ("frame_index", "pts", "time_s", "uniform_row_ratio", "sharpness", "brightness", "pixel_hash")


def read_frame_column(storage: Storage, key: str, column: str) -> np.ndarray:
    """One per-frame column, without decoding the embeddings (summaries, counts)."""
    data = storage.read_bytes(join_key(result_prefix(key), "frames.parquet"))
    return pq.read_table(io.BytesIO(data), columns=[column]).column(column).to_numpy()


def _read_probabilities(column: pa.ChunkedArray, k: int) -> np.ndarray:
    """(B, k) float32 from a list column, NaN rows where a box has none (or not k of them): read
    from Arrow's flat values, since tens of millions of boxes cannot each become an array."""
    lists = column.combine_chunks()
    out = np.full((len(lists), k), np.nan, np.float32)
    if not len(lists) or not k:
        return out
    offsets = lists.offsets.to_numpy()
    valid = (np.diff(offsets) == k) & ~lists.is_null().to_numpy(zero_copy_only=False)
    values = lists.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    starts = offsets[:-1][valid]
    out[valid] = values[starts[:, None] + np.arange(k)]
    return out


def read_results(
    storage: Storage,
    key: str,
    embeddings: bool = True,
    manifest: dict[str, Any] | None = None,
    objects: bool | None = None,
) -> VideoResults:
    """A video's results; `embeddings=False` skips decoding frame embeddings (conversion needs
    none) and `objects=False` object embeddings (default: as `embeddings`). `manifest`, when the
    caller has read it already, saves a round trip."""
    manifest = manifest or read_manifest(storage, key)
    if manifest is None:
        raise FileNotFoundError(f"no finished results for cache key {key} in {storage.uri}")
    objects = embeddings if objects is None else objects
    prefix = result_prefix(key)
    columns = list(FRAME_COLUMNS) + (["embedding"] if embeddings else [])
    # one file per video, read on a loader thread: Arrow's own threads would only contend with them
    frames = pq.read_table(
        io.BytesIO(storage.read_bytes(join_key(prefix, "frames.parquet"))), columns=columns, use_threads=False
    )
    det_file = pq.ParquetFile(io.BytesIO(storage.read_bytes(join_key(prefix, "detections.parquet"))))
    det_columns = [c for c in det_file.schema_arrow.names if objects or c != "embedding"]
    dets = det_file.read(columns=det_columns, use_threads=False)
    object_embeddings = _read_matrix(dets.column("embedding"), dets.num_rows) if "embedding" in det_columns else None
    return VideoResults(
        manifest=manifest,
        frame_index=frames.column("frame_index").to_numpy(),
        time_s=frames.column("time_s").to_numpy(),
        uniform_row_ratio=frames.column("uniform_row_ratio").to_numpy(),
        sharpness=frames.column("sharpness").to_numpy(),
        brightness=frames.column("brightness").to_numpy(),
        pixel_hash=np.asarray(frames.column("pixel_hash").to_pylist(), dtype=object),
        embeddings=_read_matrix(frames.column("embedding"), frames.num_rows)
        if embeddings
        else np.zeros((frames.num_rows, 0), np.float32),
        det_frame=dets.column("frame_index").to_numpy(),
        det_class=dets.column("category_id").to_numpy(),
        det_xywh=np.stack([dets.column(c).to_numpy() for c in "xywh"], axis=1)
        if dets.num_rows
        else np.zeros((0, 4), np.float32),
        det_score=dets.column("score").to_numpy(),
        det_probs=_read_probabilities(dets.column("probabilities"), len(manifest["categories"])),
        det_embeddings=object_embeddings,
    )


def write_pointer(storage: Storage, run_name: str, pointer: dict[str, Any]) -> None:
    storage.write_text(pointer_key(run_name, pointer["video"]), json.dumps(pointer, indent=1))


def read_pointer(storage: Storage, run_name: str, video_key: str) -> dict[str, Any] | None:
    key = pointer_key(run_name, video_key)
    if not storage.exists(key):
        return None
    pointer: dict[str, Any] = json.loads(storage.read_text(key))
    return pointer
