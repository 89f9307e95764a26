"""Synthetic selection inputs with known structure, for benchmarks and tests."""

from __future__ import annotations

import numpy as np

from framesift.jobs.selection.data import MetadataColumn, SelectionData, TaskPredictions, normalize_rows
from framesift.jobs.video import frame_name

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
    names: list[str] = []
    for video, rows in zip(videos, per_video, strict=True):
        video_col[rows] = video
        frame_idx[rows] = np.arange(len(rows))
        names.extend(frame_name(video, i, len(rows)) for i in range(len(rows)))
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

    boxes_per_frame = rng.integers(0, 5, n)
    box_frame = np.repeat(np.arange(n), boxes_per_frame)
    # classes correlate with the cluster, so balance and diversity interact as in real data
    box_class = (labels[box_frame] + rng.integers(0, 2, len(box_frame))) % len(SEED_CLASSES)
    box_score = rng.uniform(0.1, 1.0, len(box_frame))
    probs = None
    if with_probabilities:
        logits = rng.standard_normal((len(box_frame), len(SEED_CLASSES)))
        logits[np.arange(len(box_frame)), box_class] += 2.0
        probs = np.exp(logits, out=logits)  # in place: 10 M frames carry 20 M boxes
        probs /= probs.sum(axis=1, keepdims=True)
    preds = TaskPredictions(dict(SEED_CLASSES), box_frame, box_class.astype(np.int64), box_score, probs)
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
