"""`framesift bench picks RUN.yaml`: what a finished run's frames give each way of picking N of
them, without a detector to retrain: cover radius (the k-center objective, in unit frame-embedding
space) and near-duplicate pairs, for random (mean of 50 draws), uniform in time, and selection
configs (the run's own, frame DIVERSITY, object DIVERSITY by max and by mean, the recommended one).
The table of issue #26, for any clips: the demo's, or clips a user brings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from framesift.api.selection_config import SelectionConfig
from framesift.jobs.bench_al import measures
from framesift.jobs.selection.strategies import NEAR_DUPLICATE_FACTOR, consecutive_distance

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ISSUE_NEAR_DUPLICATE = 0.05  # issue #26's fixed threshold on the demo (its mean consecutive distance: 0.034)
RANDOM_DRAWS = 50


def configs(task: str, n: int, own: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    def entry(strategy: dict[str, Any], **inp: Any) -> dict[str, Any]:
        return {"input": {"type": "EMBEDDINGS", **inp}, "strategy": {"type": "DIVERSITY", **strategy}}

    recommended = json.loads((EXAMPLES / "recommended_selection_config.json").read_text())
    for e in recommended["strategies"]:
        if e["input"].get("task"):
            e["input"]["task"] = task
    out = {
        "frame DIVERSITY": {"strategies": [entry({})]},
        "object DIVERSITY (max)": {"strategies": [entry({}, task=task)]},
        "object DIVERSITY (mean, opt-in)": {"strategies": [entry({"framesift_object_score": "mean"}, task=task)]},
        "recommended": recommended,
    }
    if own is not None:
        out["the run's own config"] = own
    return {name: {**cfg, "n_samples": n} for name, cfg in out.items()}


def uniform_rows(videos: np.ndarray, n: int) -> list[int]:
    """n frames evenly spaced in time, shared out over the videos as evenly as they allow."""
    starts = np.flatnonzero(np.r_[True, videos[1:] != videos[:-1]])
    ends = np.r_[starts[1:], len(videos)]
    per = [n // len(starts) + (1 if k < n % len(starts) else 0) for k in range(len(starts))]
    rows: list[int] = []
    for start, end, count in zip(starts, ends, per, strict=True):
        rows += [int(r) for r in np.linspace(start, end - 1, count).round()] if count else []
    return rows


def measure_run(run_file: str, n: int) -> dict[str, Any]:
    from framesift.jobs.collect import load_ok_results, run_entries
    from framesift.jobs.context import load_context
    from framesift.jobs.selection.engine import select
    from framesift.jobs.selection.sources import from_results

    ctx = load_context(run_file, stored_list=True)
    spec = ctx.run.spec
    data = from_results(load_ok_results(ctx, run_entries(ctx)), spec.model.task, spec.quality.corruption_threshold)
    assert data.embeddings is not None
    emb = measures.unit(np.asarray(data.embeddings, np.float32))
    scale = consecutive_distance(emb, data.videos)
    own = spec.selection.model_dump(mode="json", exclude_unset=True) if spec.selection else None
    rows: dict[str, list[int]] = {"uniform in time": uniform_rows(data.videos, n)}
    for name, config in configs(spec.model.task, n, own).items():
        result = select(data, SelectionConfig.model_validate(config))
        rows[name] = [p.index for p in result.picks]

    def measured(picked: list[int]) -> dict[str, float]:
        return {
            "coverRadius": round(measures.cover_radius(emb, picked), 4),
            "nearDuplicatePairs": measures.near_duplicate_pairs(emb, picked, ISSUE_NEAR_DUPLICATE),
            "nearDuplicatePairsScaled": measures.near_duplicate_pairs(emb, picked, NEAR_DUPLICATE_FACTOR * scale),
        }

    rng = np.random.default_rng(0)
    draws = [measured(sorted(rng.choice(len(emb), n, replace=False).tolist())) for _ in range(RANDOM_DRAWS)]
    table = {f"random (mean of {RANDOM_DRAWS})": {k: round(float(np.mean([d[k] for d in draws])), 4) for k in draws[0]}}
    table.update({name: measured(picked) for name, picked in rows.items()})
    return {
        "run": run_file,
        "frames": len(emb),
        "picks": n,
        "meanConsecutiveDistance": round(scale, 4),
        "nearDuplicateThresholds": {"fixed": ISSUE_NEAR_DUPLICATE, "scaled": round(NEAR_DUPLICATE_FACTOR * scale, 4)},
        "table": table,
    }
