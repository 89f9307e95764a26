"""The intrinsic measures of a labelled set, beside the detector's mAP (pure functions)."""

from __future__ import annotations

from typing import Any

import numpy as np

NEAR_DUPLICATE_FACTOR = 1.5  # a pair closer than 1.5 × the pool's mean nearest-neighbour distance


def unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def cover_radius(emb: np.ndarray, picked: list[int]) -> float:
    """The largest distance from any frame to its nearest picked frame (the k-center objective)."""
    nearest = np.full(len(emb), np.inf)
    for row in picked:
        nearest = np.minimum(nearest, np.linalg.norm(emb - emb[row], axis=1))
    return float(nearest.max())


def mean_nearest_neighbour(emb: np.ndarray) -> float:
    """The pool's own mean distance from a frame to its nearest other frame (consecutive frames)."""
    gram = emb @ emb.T
    sq = np.maximum(np.diag(gram)[:, None] + np.diag(gram)[None, :] - 2 * gram, 0.0)
    np.fill_diagonal(sq, np.inf)
    return float(np.sqrt(sq.min(axis=1)).mean())


def near_duplicate_pairs(emb: np.ndarray, picked: list[int], threshold: float) -> int:
    if len(picked) < 2:
        return 0
    chosen = emb[picked]
    dist = np.linalg.norm(chosen[:, None, :] - chosen[None, :, :], axis=2)
    return int((dist[np.triu_indices(len(picked), 1)] < threshold).sum())


def track_coverage(truth: dict[str, Any], frames: list[tuple[str, int]], videos: list[str]) -> float:
    """Share of the distinct ground-truth tracks of `videos` with at least one labelled box."""
    every = {b["track"] for v in videos for f in truth[v]["frames"] for b in f}
    seen = {b["track"] for v, i in frames for b in truth[v]["frames"][i]}
    return len(seen & every) / max(1, len(every))


def rare_class_recall(truth: dict[str, Any], frames: list[tuple[str, int]], videos: list[str], rare: int) -> float:
    """Share of the rare class's boxes in `videos` that are on labelled frames."""
    total = sum(b["cls"] == rare for v in videos for f in truth[v]["frames"] for b in f)
    labelled = sum(b["cls"] == rare for v, i in set(frames) for b in truth[v]["frames"][i])
    return labelled / max(1, total)


def mean_sd(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(arr.mean()), 4), "sd": round(float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, 4)}
