"""A naive reference of the greedy loop: every score recomputed from scratch at every step.

Same arithmetic per element as the engine (distances through the same function), no
incremental state: tests and `framesift bench select` check that the fast engine picks exactly
the same frames.
"""

from __future__ import annotations

import numpy as np

from framesift.api.selection_config import (
    BalanceStrategy,
    DiversityStrategy,
    EmbeddingsInput,
    SelectionConfig,
    ThresholdStrategy,
    WeightsStrategy,
)
from framesift.jobs.selection.data import SelectionData
from framesift.jobs.selection.engine import candidate_mask, class_rows, numeric_input
from framesift.jobs.selection.strategies import (
    BalanceLoss,
    Diversity,
    ObjectDiversity,
    balance_matrix,
    distance_scores,
    minmax_unit,
    weights_scores,
)


def naive_select(data: SelectionData, config: SelectionConfig) -> list[int]:
    """Picks (row indices) for DIVERSITY (frame or object embeddings), BALANCE, WEIGHTS and
    THRESHOLD configs."""
    empty = np.zeros(0, np.int64)
    alive, _, passing = candidate_mask(data, config, empty)
    n_target = config.target_count(passing)
    candidates = alive.copy()
    picks: list[int] = []
    while len(picks) < n_target and alive.any():
        total = np.ones(len(data), np.float64)
        for i, entry in enumerate(config.strategies):
            s = entry.strategy
            if isinstance(s, ThresholdStrategy):
                continue
            if isinstance(s, WeightsStrategy):
                g = weights_scores(numeric_input(data, i, entry), candidates)
            elif isinstance(s, DiversityStrategy) and isinstance(entry.input, EmbeddingsInput) and entry.input.task:
                preds = data.predictions[entry.input.task]
                assert preds.box_embeddings is not None
                # every object's distance recomputed from the objects of all picks so far
                objects = ObjectDiversity(
                    preds.box_frame, preds.box_embeddings, len(data), ~candidates, np.array(picks)
                )
                objects.dead[picks] = True
                objects.refresh()
                g = distance_scores(objects.d)
            elif isinstance(s, DiversityStrategy):
                assert data.embeddings is not None
                fresh = Diversity(data.embeddings, ~candidates, data.embeddings[picks])
                fresh.d[picks] = -1.0
                g = distance_scores(fresh.d)
            elif isinstance(s, BalanceStrategy):
                c, names = class_rows(data, i, entry)
                rows, target, _ = balance_matrix(c, names, s.target, s.effective_distribution, candidates)
                counts = rows[:, picks].sum(axis=1) if picks else np.zeros(len(target))
                g = minmax_unit(-BalanceLoss(target, counts).distance(rows, rows.sum(axis=0)), alive)
            else:
                raise NotImplementedError(type(s).__name__)
            total *= g if s.strength == 1.0 else np.power(g, s.strength)
        total[~alive] = -np.inf
        best = int(np.argmax(total))
        picks.append(best)
        alive[best] = False
    return picks
