from __future__ import annotations

import math

import numpy as np
import pytest

from framesift.jobs.selection.data import TaskPredictions
from framesift.jobs.selection.scores import (
    SCORE_NAMES,
    all_scores,
    object_frequency,
    objectness_least_confidence,
)


def scores_for(frames: int, boxes: list[tuple[int, int, float]], n_classes: int = 3, probs=None) -> dict:
    box_frame = np.array([b[0] for b in boxes], np.int64)
    box_class = np.array([b[1] for b in boxes], np.int64)
    box_score = np.array([b[2] for b in boxes], np.float64)
    return all_scores(frames, box_frame, box_class, box_score, probs, n_classes)


def test_no_boxes_anywhere() -> None:
    s = scores_for(3, [])
    assert s["objectness_least_confidence"].tolist() == [0, 0, 0]
    assert s["object_frequency"].tolist() == [1.0, 1.0, 1.0]  # all equal → 1.0
    for name in ("uncertainty_least_confidence", "uncertainty_margin", "uncertainty_entropy"):
        assert s[name].tolist() == [0, 0, 0]


def test_one_score_only_box_uses_the_c_plus_one_vector() -> None:
    s = scores_for(2, [(0, 0, 0.8)], n_classes=3)
    other = 0.2 / 3
    assert s["objectness_least_confidence"][0] == pytest.approx(0.2)
    assert s["uncertainty_least_confidence"][0] == pytest.approx((1 - 0.8) / (1 - 1 / 4))
    assert s["uncertainty_margin"][0] == pytest.approx(1 - (0.8 - other))
    entropy = -(0.8 * math.log2(0.8) + 3 * other * math.log2(other)) / math.log2(4)
    assert s["uncertainty_entropy"][0] == pytest.approx(entropy)
    assert s["objectness_least_confidence"][1] == 0 and s["uncertainty_entropy"][1] == 0
    assert s["object_frequency"].tolist() == [1.0, 0.9]


def test_box_with_probabilities() -> None:
    probs = np.array([[0.7, 0.2, 0.1]])
    s = scores_for(1, [(0, 0, 0.9)], n_classes=3, probs=probs)
    assert s["uncertainty_least_confidence"][0] == pytest.approx(0.3 / (1 - 1 / 3))
    assert s["uncertainty_margin"][0] == pytest.approx(0.5)
    entropy = -(0.7 * math.log2(0.7) + 0.2 * math.log2(0.2) + 0.1 * math.log2(0.1)) / math.log2(3)
    assert s["uncertainty_entropy"][0] == pytest.approx(entropy)


def test_several_boxes_take_the_most_uncertain_and_the_mean_score() -> None:
    s = scores_for(1, [(0, 0, 0.9), (0, 1, 0.5), (0, 1, 0.7)], n_classes=2)
    assert s["objectness_least_confidence"][0] == pytest.approx(1 - (0.9 + 0.5 + 0.7) / 3)
    assert s["uncertainty_least_confidence"][0] == pytest.approx((1 - 0.5) / (1 - 1 / 3))


def test_object_frequency_counts_further_boxes_a_quarter() -> None:
    box_frame = np.array([0, 0, 0, 1])
    box_class = np.array([0, 0, 1, 2])
    raw_a, raw_b = 1 + 0.25 + 1, 1.0  # frame 0: class 0 twice, class 1 once; frame 1: one box
    freq = object_frequency(3, box_frame, box_class)
    assert freq.tolist() == pytest.approx([1.0, 0.9 + 0.1 * raw_b / raw_a, 0.9])
    assert objectness_least_confidence(3, box_frame, np.array([0.5, 0.5, 0.5, 1.0])).tolist() == [0.5, 0.0, 0.0]


def test_all_frames_equal_give_equal_scores() -> None:
    s = scores_for(4, [(i, 1, 0.6) for i in range(4)])
    for values in s.values():
        assert len(set(np.round(values, 12).tolist())) == 1
    assert s["object_frequency"].tolist() == [1.0] * 4


def test_each_score_alone_is_the_one_computed_with_all_of_them() -> None:
    """`TaskPredictions.score` computes one score (what a WEIGHTS strategy reads) bit for bit as
    `all_scores` does, and object_frequency's per-(frame, class) keys count as a unique over
    (frame, class) rows would."""
    rng = np.random.default_rng(3)
    n, k = 400, 5
    box_frame = np.sort(rng.integers(0, n - 20, 3000))  # the last frames have no box
    box_class = rng.integers(0, k, len(box_frame))
    box_score = rng.uniform(0.05, 1.0, len(box_frame))
    probs = rng.dirichlet(np.ones(k), len(box_frame))
    probs[::7] = np.nan  # score-only boxes too
    every = all_scores(n, box_frame, box_class, box_score, probs, k)
    preds = TaskPredictions({c: f"class{c}" for c in range(k)}, box_frame, box_class, box_score, probs)
    for name in SCORE_NAMES:
        assert np.array_equal(preds.score(n, name), every[name]), name

    pairs, counts = np.unique(np.stack([box_frame, box_class], axis=1), axis=0, return_counts=True)
    raw = np.zeros(n)
    np.add.at(raw, pairs[:, 0], 1.0 + 0.25 * (counts - 1))
    assert np.array_equal(every["object_frequency"], 0.9 + (1.0 - 0.9) * (raw - raw.min()) / (raw.max() - raw.min()))
    with pytest.raises(KeyError, match="unknown score 'novelty'"):
        preds.score(n, "novelty")
