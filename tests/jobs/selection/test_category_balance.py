"""BALANCE over categorical metadata (video, camera, site) without a (K, n) one-hot matrix
(strategies.CategoryBalance): the same losses as the dense class rows, bit for bit up to
CategoryBalance.EXACT_CLASSES classes, and the same picks as the naive reference, with as many
classes as a fleet has videos."""

from __future__ import annotations

import numpy as np
import pytest

from framesift.api.selection_config import SelectionConfig
from framesift.jobs.selection.data import MetadataColumn
from framesift.jobs.selection.engine import select
from framesift.jobs.selection.reference import naive_select
from framesift.jobs.selection.strategies import (
    Balance,
    CategoryBalance,
    balance_matrix,
    category_balance_rows,
)
from framesift.jobs.selection.synthetic import synthetic_data


def one_hot(position: np.ndarray, k: int) -> np.ndarray:
    rows = np.zeros((k, len(position)))
    rows[position, np.arange(len(position))] = 1.0
    return rows


@pytest.mark.parametrize(
    ("distribution", "target"),
    [("TARGET", {"b": 0.5, "d": 0.2}), ("TARGET", {"a": 0.5, "b": 0.5}), ("UNIFORM", None), ("INPUT", None)],
)
def test_category_rows_and_losses_equal_the_dense_one_hot_ones(
    distribution: str, target: dict[str, float] | None
) -> None:
    rng = np.random.default_rng(4)
    names = ["a", "b", "c", "d", "e"]
    position = rng.integers(0, 4, 3000)  # "e" never occurs
    present = rng.uniform(size=3000) > 0.2
    dense, dense_target, dense_names = balance_matrix(one_hot(position, 5), names, target, distribution, present)
    row, category_target, category_names = category_balance_rows(position, names, target, distribution, present)
    assert category_names == dense_names
    assert np.array_equal(category_target, dense_target)
    assert np.array_equal(one_hot(row[row >= 0], len(dense_names)), dense[:, row >= 0])
    assert not dense[:, row < 0].any()

    start = dense[:, :40].sum(axis=1)
    plain, categories = Balance(dense, dense_target, start), CategoryBalance(row, category_target, start)
    for index in (7, 8, 9, 500):  # picks move the shares: losses stay equal bit for bit
        assert np.array_equal(plain.losses(), categories.losses())
        assert np.array_equal(plain.scores(present), categories.scores(present))
        plain.picked(index)
        categories.picked(index)


def test_above_the_exact_limit_the_per_class_sum_stays_within_rounding() -> None:
    k = CategoryBalance.EXACT_CLASSES + 50
    rng = np.random.default_rng(5)
    row = rng.integers(-1, k, 20000)
    target = rng.dirichlet(np.ones(k))
    start = np.bincount(row[row >= 0][:300], minlength=k).astype(np.float64)
    dense = np.zeros((k, len(row)))
    dense[row[row >= 0], np.flatnonzero(row >= 0)] = 1.0
    exact = Balance(dense, target, start).losses()
    assert np.allclose(CategoryBalance(row, target, start).losses(), exact, rtol=1e-12, atol=1e-12)


def test_a_fleet_of_videos_is_balanced_with_the_reference_s_picks() -> None:
    """More videos than the exact limit, UNIFORM over them: the picks are the reference's (its
    dense one-hot matrix is fine at this size), one per video before any video gets a second."""
    n_videos = CategoryBalance.EXACT_CLASSES + 44
    data = synthetic_data(1500, dim=16, clusters=10, seed=9)
    video_of = np.random.default_rng(9).integers(0, n_videos, len(data))
    data.metadata["camera"] = MetadataColumn(np.array([f"cam{v:04d}" for v in video_of], object), numeric=False)
    config = SelectionConfig.model_validate(
        {
            "n_samples": 320,
            "strategies": [
                {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
                {
                    "input": {"type": "METADATA", "key": "camera"},
                    "strategy": {"type": "BALANCE", "distribution": "UNIFORM"},
                },
            ],
        }
    )
    picks = [p.index for p in select(data, config).picks]
    assert picks == naive_select(data, config)
    per_camera = np.bincount(video_of[picks], minlength=n_videos)
    assert per_camera.max() - per_camera[per_camera > 0].min() <= 1
