"""Active-learning scores per frame, from a task's predictions (SELECTION.md §4).

Pure numpy over flat box arrays: `box_frame[b]` is the frame of box b. Formulas follow the
open-source scorers LightlyOne's worker descends from.
"""

from __future__ import annotations

import numpy as np

SCORE_NAMES = (
    "object_frequency",
    "objectness_least_confidence",
    "uncertainty_least_confidence",
    "uncertainty_margin",
    "uncertainty_entropy",
)
OBJECT_FREQUENCY_RANGE = (0.9, 1.0)
FURTHER_BOX_WEIGHT = 0.25


def objectness_least_confidence(n_frames: int, box_frame: np.ndarray, box_score: np.ndarray) -> np.ndarray:
    """1 − mean(box scores); 0 for a frame with no boxes."""
    counts = np.bincount(box_frame, minlength=n_frames)
    sums = np.bincount(box_frame, weights=box_score, minlength=n_frames)
    out = np.zeros(n_frames, np.float64)
    has = counts > 0
    out[has] = 1.0 - sums[has] / counts[has]
    return out


def object_frequency(n_frames: int, box_frame: np.ndarray, box_class: np.ndarray) -> np.ndarray:
    """Each class present counts 1 for its first box and 0.25 for each further box; min–max
    scaled over all frames into [0.9, 1.0] (all equal → 1.0)."""
    raw = np.zeros(n_frames, np.float64)
    if len(box_frame):
        # 1 + 0.25·(boxes of the class − 1) summed over the classes present is
        # 0.75·classes present + 0.25·boxes, exact in binary; one int64 key per (frame, class)
        # pair instead of a unique over (box, 2) rows (ten million frames carry tens of millions)
        n_classes = int(box_class.max()) + 1
        pairs = np.unique(box_frame * n_classes + box_class)
        raw += (1.0 - FURTHER_BOX_WEIGHT) * np.bincount(pairs // n_classes, minlength=n_frames)
        raw += FURTHER_BOX_WEIGHT * np.bincount(box_frame, minlength=n_frames)
    lo, hi = OBJECT_FREQUENCY_RANGE
    if n_frames == 0:
        return raw
    spread = raw.max() - raw.min()
    if spread == 0:
        return np.ones(n_frames, np.float64)
    return lo + (hi - lo) * (raw - raw.min()) / spread


def box_probability_vectors(
    box_class_index: np.ndarray, box_score: np.ndarray, box_probs: np.ndarray | None, n_classes: int
) -> np.ndarray:
    """Per-box class probability vectors. Where a box has no probabilities (NaN row), the vector
    is s at its label and (1 − s)/C elsewhere, length C + 1 (the extra entry stands for
    background); boxes with probabilities get theirs padded with a 0 background entry."""
    n = len(box_score)
    out = np.zeros((n, n_classes + 1), np.float64)
    has = np.zeros(n, bool) if box_probs is None else ~np.isnan(box_probs).any(axis=1)
    if box_probs is not None and has.any():
        out[has, :n_classes] = box_probs[has]
    missing = ~has
    if missing.any():
        s = box_score[missing].astype(np.float64)
        out[missing] = ((1.0 - s) / n_classes)[:, None]
        out[np.flatnonzero(missing), box_class_index[missing]] = s
    return out


def _uncertainties(p: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least confidence, margin, entropy per row, normalised by the row's number of classes."""
    if len(p) == 0:
        empty = np.zeros(0)
        return empty, empty, empty
    ordered = np.sort(p, axis=1)
    p1, p2 = ordered[:, -1], ordered[:, -2]
    with np.errstate(divide="ignore", invalid="ignore"):
        least = np.where(lengths > 1, (1.0 - p1) / (1.0 - 1.0 / lengths), 0.0)
        logs = np.where(p > 0, np.log2(np.where(p > 0, p, 1.0)), 0.0)
        entropy = np.where(lengths > 1, -(p * logs).sum(axis=1) / np.log2(np.maximum(lengths, 2)), 0.0)
    margin = 1.0 - (p1 - p2)
    return np.clip(least, 0, 1), np.clip(margin, 0, 1), np.clip(entropy, 0, 1)


def uncertainty_scores(
    n_frames: int,
    box_frame: np.ndarray,
    box_class_index: np.ndarray,
    box_score: np.ndarray,
    box_probs: np.ndarray | None,
    n_classes: int,
) -> dict[str, np.ndarray]:
    """Per-box uncertainties reduced to the frame by max; 0 for frames without boxes.

    A box with probabilities uses its own vector (C entries); a score-only box uses the
    C + 1 vector of `box_probability_vectors`.
    """
    vectors = box_probability_vectors(box_class_index, box_score, box_probs, n_classes)
    has = np.zeros(len(box_score), bool) if box_probs is None else ~np.isnan(box_probs).any(axis=1)
    lengths = np.where(has, n_classes, n_classes + 1).astype(np.float64)
    # Rows with probabilities carry a trailing 0 (background) that changes none of the formulas.
    least, margin, entropy = _uncertainties(vectors, lengths)
    out = {}
    for name, per_box in (
        ("uncertainty_least_confidence", least),
        ("uncertainty_margin", margin),
        ("uncertainty_entropy", entropy),
    ):
        frame = np.zeros(n_frames, np.float64)
        if len(per_box):
            np.maximum.at(frame, box_frame, per_box)
        out[name] = frame
    return out


def all_scores(
    n_frames: int,
    box_frame: np.ndarray,
    box_class_index: np.ndarray,
    box_score: np.ndarray,
    box_probs: np.ndarray | None,
    n_classes: int,
) -> dict[str, np.ndarray]:
    scores = {
        "object_frequency": object_frequency(n_frames, box_frame, box_class_index),
        "objectness_least_confidence": objectness_least_confidence(n_frames, box_frame, box_score),
    }
    scores.update(uncertainty_scores(n_frames, box_frame, box_class_index, box_score, box_probs, n_classes))
    return scores
