"""Synthetic selection inputs with known structure, for benchmarks and tests."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from framesift.jobs.selection.data import FrameNames, MetadataColumn, SelectionData, TaskPredictions, normalize_rows
from framesift.jobs.storage import Storage

SEED_CLASSES = {0: "person", 1: "bicycle", 2: "car"}
SEED_VIDEOS = ("passageway1-c0.avi", "terrace1-c0.avi", "terrace1-c2.avi")


def synthetic_data(
    n: int,
    dim: int = 448,
    clusters: int = 50,
    videos: tuple[str, ...] = SEED_VIDEOS,
    task: str = "yolov8_detection",
    seed: int = 0,
    with_probabilities: bool = True,
    dtype: type[np.floating] = np.float32,
) -> SelectionData:
    """n frames spread over the videos, embeddings drawn around `clusters` centres (float32,
    generated in blocks so a million rows need no float64 copy; float16 stores the same rows
    rounded, for ten million frames), 0–4 boxes per frame."""
    rng = np.random.default_rng(seed)
    per_video = np.array_split(np.arange(n), len(videos))
    video_col = np.empty(n, dtype=object)
    frame_idx = np.empty(n, np.int64)
    for video, rows in zip(videos, per_video, strict=True):
        video_col[rows] = video
        frame_idx[rows] = np.arange(len(rows))
    names = FrameNames(video_col, frame_idx, {v: len(rows) for v, rows in zip(videos, per_video, strict=True)})
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    emb = np.empty((n, dim), dtype)
    labels = rng.integers(0, clusters, n)
    for start in range(0, n, 65536):
        stop = min(n, start + 65536)
        block = centres[labels[start:stop]]
        block += 0.35 * rng.standard_normal((stop - start, dim), dtype=np.float32)
        emb[start:stop] = block if dtype == np.float32 else normalize_rows(block)
    if dtype == np.float32:
        emb = normalize_rows(emb)

    # the same draws as one expression per array, with fewer full-size temporaries (ten
    # million frames carry twenty million boxes)
    box_frame = np.repeat(np.arange(n), rng.integers(0, 5, n))
    # classes correlate with the cluster, so balance and diversity interact as in real data
    box_class = labels[box_frame]
    box_class += rng.integers(0, 2, len(box_frame))
    box_class %= len(SEED_CLASSES)
    box_score = rng.uniform(0.1, 1.0, len(box_frame))
    probs = None
    if with_probabilities:
        probs = rng.standard_normal((len(box_frame), len(SEED_CLASSES)))  # logits, then in place
        for start in range(0, len(box_frame), 1 << 20):
            boxes = slice(start, min(len(box_frame), start + (1 << 20)))
            logits = probs[boxes]
            logits[np.arange(len(logits)), box_class[boxes]] += 2.0
        np.exp(probs, out=probs)
        probs /= probs.sum(axis=1, keepdims=True)
    preds = TaskPredictions(dict(SEED_CLASSES), box_frame, box_class, box_score, probs)
    stems = np.array([v.rsplit(".", 1)[0] for v in videos], dtype=object)
    video_name = np.empty(n, dtype=object)
    for stem, rows in zip(stems, per_video, strict=True):
        video_name[rows] = stem
    return SelectionData(
        file_names=names,
        videos=video_col,
        frame_index=frame_idx,
        embeddings=emb,
        corrupt=np.zeros(n, bool),
        duplicate_key=np.arange(n),  # every frame distinct (int64: no ten million Python ints)
        predictions={task: preds},
        metadata={"video_name": MetadataColumn(video_name, numeric=False)},
    )


def write_synthetic_results(
    storage: Storage,
    n: int,
    videos: int,
    dim: int = 448,
    clusters: int = 50,
    seed: int = 0,
    objects: bool = False,
    duplicate_every: int = 50,
) -> list[str]:
    """n frames over `videos` cameras as framesift's stored per-video results (the Parquet files
    and manifest inference writes), drawn like synthetic_data: what the results loader reads at
    fleet scale without inferring anything. Written uncompressed (inference writes zstd; random
    draws would only cost compression time here, saving nothing). Every `duplicate_every`-th frame repeats the pixels
    of the frame before it. Returns the cache keys."""
    from framesift.jobs import results

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    categories = {str(k): v for k, v in SEED_CLASSES.items()}
    keys = []
    for v, count in enumerate(np.diff(np.linspace(0, n, videos + 1).astype(np.int64)).tolist()):
        video = f"camera-{v:05d}.mp4"
        labels = rng.integers(0, clusters, count)
        emb = centres[labels] + 0.35 * rng.standard_normal((count, dim), dtype=np.float32)
        hashes = [hashlib.blake2b(f"{video}/{i}".encode(), digest_size=16).hexdigest() for i in range(count)]
        for i in range(duplicate_every, count, duplicate_every):
            hashes[i] = hashes[i - 1]
        frames = np.arange(count)
        quality = np.stack([rng.uniform(0, 0.3, count), rng.uniform(10, 500, count), rng.uniform(40, 200, count)], 1)
        box_frame = np.repeat(frames, rng.integers(0, 5, count))
        box_class = (labels[box_frame] + rng.integers(0, 2, len(box_frame))) % len(SEED_CLASSES)
        logits = rng.standard_normal((len(box_frame), len(SEED_CLASSES))).astype(np.float32)
        logits[np.arange(len(box_frame)), box_class] += 2.0
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        xywh = np.column_stack([rng.uniform(0, 600, (len(box_frame), 2)), rng.uniform(8, 200, (len(box_frame), 2))])
        object_dim = dim if objects else 0
        object_emb = rng.standard_normal((len(box_frame), object_dim), dtype=np.float32)
        key = hashlib.sha256(f"{seed}/{video}".encode()).hexdigest()[:32]
        prefix = results.result_prefix(key)
        frames_table = results.frames_table(frames, frames * 40, frames / 25.0, quality, hashes, emb)
        dets_table = results.detections_table(
            box_frame, box_class, xywh, rng.uniform(0.1, 1.0, len(box_frame)), list(probs), object_emb, object_dim
        )
        for name, table in (("frames.parquet", frames_table), ("detections.parquet", dets_table)):
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="none")  # random floats do not compress
            storage.write_bytes(f"{prefix}/{name}", sink.getvalue().to_pybytes(), "application/octet-stream")
        manifest = {
            "video": video,
            "identity": f"synthetic-{seed}",
            "cacheKey": key,
            "frames": count,
            "inferredFrames": count,
            "frameStride": 1,
            "width": 640,
            "height": 480,
            "fps": 25.0,
            "decodeErrors": [],
            "embeddingDim": dim,
            "categories": categories,
            "model": {"weights": "synthetic", "fingerprint": "synthetic"},
        }
        results.write_manifest(storage, key, manifest)
        keys.append(key)
    return keys
