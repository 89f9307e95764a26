"""framesift's opt-in keys on DIVERSITY (not LightlyOne's): near-duplicates excluded, and a
frame's objects scored by their mean novelty. Without them a config keeps LightlyOne's meaning."""

from __future__ import annotations

import numpy as np

from framesift.jobs.selection.data import SelectionData, normalize_rows
from framesift.jobs.selection.engine import select
from framesift.jobs.selection.strategies import NEAR_DUPLICATE_FACTOR, consecutive_distance
from tests.jobs.selection.test_engine import cfg, frames
from tests.jobs.selection.test_objects import scene

WEIGHTS = {"input": {"type": "METADATA", "key": "weight"}, "strategy": {"type": "WEIGHTS"}}


def video_like(n: int = 400, seed: int = 0) -> SelectionData:
    """Frames that drift slowly (consecutive frames near each other), the heaviest weights in
    one stretch of consecutive frames: weights alone pick near-duplicates."""
    data = frames(n, videos=1, dim=16, seed=seed)
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 0.05, (n, 16)), axis=0) + rng.normal(0, 1, 16)
    data.embeddings = normalize_rows(walk.astype(np.float32))
    weight = rng.uniform(0, 1, n)
    weight[200:230] += 10.0
    data.metadata["weight"].values[:] = weight
    return data


def min_pair_distance(emb: np.ndarray, picks: list[int]) -> float:
    chosen = emb[picks]
    dist = np.linalg.norm(chosen[:, None] - chosen[None], axis=2)
    return float(dist[np.triu_indices(len(picks), 1)].min())


def test_excluding_near_duplicates_keeps_picks_apart() -> None:
    data = video_like()
    threshold = NEAR_DUPLICATE_FACTOR * consecutive_distance(data.embeddings, data.videos)
    diversity = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", "strength": 0.2}}
    plain = select(data, cfg(12, diversity, WEIGHTS))
    plain_rows = [p.index for p in plain.picks]
    assert min_pair_distance(data.embeddings, plain_rows) < threshold  # weights win: near-duplicates
    opted = {**diversity, "strategy": {**diversity["strategy"], "framesift_exclude_near_duplicates": True}}
    result = select(data, cfg(12, opted, WEIGHTS))
    rows = [p.index for p in result.picks]
    assert len(rows) == 12 and min_pair_distance(data.embeddings, rows) >= threshold
    # a datapool frame keeps its neighbours out too
    pooled = select(data, cfg(12, opted, WEIGHTS), datapool_names=[data.file_names[215]])
    near = np.linalg.norm(data.embeddings - data.embeddings[215], axis=1) < threshold
    assert not near[[p.index for p in pooled.picks]].any()


def test_the_mean_object_rule_prefers_new_objects_to_a_crowd_with_one() -> None:
    from framesift.jobs.selection.strategies import ObjectDiversity

    crowd_with_one_new = "AAAAAAAAB"  # many known faces, one new
    all_new = "CC"
    data = scene(["AAAA", crowd_with_one_new, all_new])
    preds = data.predictions["det"]
    assert preds.box_embeddings is not None

    def novelty(rule: str) -> np.ndarray:
        dead, pool = np.array([True, False, False]), np.array([0])  # the A's are known (datapool)
        return ObjectDiversity(preds.box_frame, preds.box_embeddings, 3, dead, pool, rule=rule).d

    newest, mean = novelty("max"), novelty("mean")
    assert abs(newest[1] - newest[2]) < 0.02 * newest[2]  # max: the crowd looks as new as the new frame
    assert mean[2] > 5 * mean[1]  # mean: the crowd is mostly known
    objects = {"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "DIVERSITY"}}
    opted = {**objects, "strategy": {"type": "DIVERSITY", "framesift_object_score": "mean"}}
    pool = [data.file_names[0]]
    assert [p.index for p in select(data, cfg(1, opted), datapool_names=pool).picks] == [2]
