"""The greedy step's frame-level DIVERSITY is lazy (strategies.Diversity): a pick updates no
other frame; only frames whose stale distance could still win are brought up to date. These
check that it picks exactly what recomputing every distance picks, on float16 embeddings too,
and that it touches few frames per pick."""

from __future__ import annotations

import numpy as np
import pytest

from framesift.api.selection_config import SelectionConfig
from framesift.jobs.bench import SEED_SELECTION
from framesift.jobs.selection import strategies
from framesift.jobs.selection.engine import select
from framesift.jobs.selection.reference import naive_select
from framesift.jobs.selection.synthetic import synthetic_data


def seed_config(n: int) -> SelectionConfig:
    return SelectionConfig.model_validate({"n_samples": n, **SEED_SELECTION})


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_the_lazy_step_picks_what_recomputing_every_distance_picks(dtype: type[np.floating]) -> None:
    data = synthetic_data(4000, dim=24, clusters=12, seed=11, dtype=dtype)
    assert data.embeddings is not None and data.embeddings.dtype == dtype
    config = seed_config(80)
    result = select(data, config)
    assert [p.index for p in result.picks] == naive_select(data, config)
    # the reported diversity score is the exact one: d / max d over the candidates at that step
    assert all(0 < p.scores["0:DIVERSITY:embeddings"] <= 1 for p in result.picks)


def test_diversity_only_equals_plain_farthest_point_sampling() -> None:
    data = synthetic_data(3000, dim=16, clusters=6, seed=3)
    emb = data.embeddings
    assert emb is not None
    config = SelectionConfig.model_validate(
        {"n_samples": 40, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    )
    nearest = np.full(len(emb), 2.0, np.float32)
    plain = []
    for _ in range(40):
        best = int(np.argmax(nearest))
        plain.append(best)
        np.minimum(nearest, np.sqrt(np.maximum(2.0 * (1.0 - emb @ emb[best]), 0.0)), out=nearest)
        nearest[plain] = -1.0
    assert [p.index for p in select(data, config).picks] == plain


def test_a_pick_brings_few_frames_up_to_date(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first picks (every frame starts at distance 2, so the first pick updates all),
    a pick compares only a small share of the frames with the new picks."""
    n = 30000
    data = synthetic_data(n, dim=24, clusters=20, seed=2)
    touched: list[int] = []
    refresh = strategies.Diversity.refresh

    def counting(self: strategies.Diversity, rows: np.ndarray) -> None:
        touched.append(int((self.seen[rows] < self.n_picks).sum()))
        refresh(self, rows)

    monkeypatch.setattr(strategies.Diversity, "refresh", counting)
    calls_before: list[int] = []
    picked = strategies.Diversity.picked

    def counting_picks(self: strategies.Diversity, index: int) -> None:
        calls_before.append(len(touched))
        picked(self, index)

    monkeypatch.setattr(strategies.Diversity, "picked", counting_picks)
    select(data, seed_config(120))
    later = sum(touched[calls_before[20] :]) / (len(calls_before) - 20)
    assert later < 0.05 * n, f"{later:.0f} frames brought up to date per pick, of {n}"
