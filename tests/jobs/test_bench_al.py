"""`framesift bench al`: the labelled benchmark, the measures, and the whole loop at CI size.
The loop's test asserts what the harness produced (shape, shared round 0, no frame picked twice,
resumption), never a score threshold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from framesift.jobs.bench_al import METHODS, measures, scenes
from framesift.jobs.bench_al.loop import config_task, selection_config

FRAMESIFT = str(Path(sys.executable).parent / "framesift")


def truth_of(seed: int, shape: scenes.Shape) -> dict[str, dict]:
    """Ground truth as build() computes it, without encoding videos."""
    truth, next_id = {}, 0
    for name, split, kind, rare, event in scenes.video_plans(seed, shape):
        rng = np.random.default_rng([seed, 2, len(truth)])
        plan = scenes.plan_video(rng, name, split, kind, shape.frames, rare, event, next_id)
        next_id += len(plan.tracks)
        _images, boxes = scenes.render(plan, shape.frames, rng)
        truth[name] = {"split": split, "kind": kind, "rare": rare, "event": event, "frames": boxes}
    return truth


def test_the_benchmark_is_deterministic_and_has_what_the_issue_asks_for() -> None:
    shape = scenes.Shape()
    truth = truth_of(0, shape)
    assert truth == truth_of(0, shape)
    assert truth != truth_of(1, shape)
    stats = scenes.stats(truth)
    pool = stats["pool"]
    assert 0 < pool["rareClassFrameShare"] < 0.03
    assert {v["kind"] for v in truth.values() if v["split"] == "pool"} == set(scenes.SCENE_KINDS)
    assert sum(v["event"] for v in truth.values() if v["split"] == "pool") == 1  # the rare event: one video
    assert stats["test"]["boxes"]["dog"] > 0  # the rare class is measured on the test videos
    crowd = [f for v in truth.values() if v["kind"] == "crowd" for f in v["frames"]]
    assert max(len(f) for f in crowd) >= 10
    pool_names = {n for n, v in truth.items() if v["split"] == "pool"}
    test_names = {n for n, v in truth.items() if v["split"] == "test"}
    assert not pool_names & test_names
    pool_tracks = {b["track"] for n in pool_names for f in truth[n]["frames"] for b in f}
    test_tracks = {b["track"] for n in test_names for f in truth[n]["frames"] for b in f}
    assert not pool_tracks & test_tracks  # split by video: no object is in both
    # long still stretches: most pool videos end with frames whose boxes do not move
    still = sum(truth[n]["frames"][-1] == truth[n]["frames"][-2] for n in pool_names)
    assert still >= len(pool_names) * 0.8


def test_measures_on_hand_made_points() -> None:
    emb = measures.unit(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.001], [-1.0, 0.0]]))
    assert measures.cover_radius(emb, [0, 1, 3]) == pytest.approx(0.001, abs=1e-4)
    assert measures.cover_radius(emb, [0]) == pytest.approx(2.0)
    assert measures.near_duplicate_pairs(emb, [0, 2, 1], 0.05) == 1
    assert measures.mean_nearest_neighbour(emb) == pytest.approx(
        (0.001 + np.sqrt(2) + 0.001 + np.sqrt(2)) / 4, abs=1e-3
    )
    truth = {
        "a.mp4": {"frames": [[{"track": 1, "cls": 0}], [{"track": 1, "cls": 0}, {"track": 2, "cls": 3}]]},
        "b.mp4": {"frames": [[{"track": 3, "cls": 3}]]},
    }
    assert measures.track_coverage(truth, [("a.mp4", 0)], ["a.mp4", "b.mp4"]) == pytest.approx(1 / 3)
    assert measures.rare_class_recall(truth, [("a.mp4", 1)], ["a.mp4", "b.mp4"], 3) == pytest.approx(0.5)
    assert measures.mean_sd([1.0, 3.0]) == {"mean": 2.0, "sd": pytest.approx(1.4142, abs=1e-4)}


def test_every_selection_method_has_a_valid_config_for_the_benchmark() -> None:
    from framesift.api.models import SelectionConfig

    for method in METHODS[2:]:
        config = selection_config(method, 7)
        assert config["n_samples"] == 7
        SelectionConfig.model_validate(config)
        assert config_task(config)
    demo = selection_config("demo", 5)
    (balance,) = [e for e in demo["strategies"] if e["input"].get("name") == "CLASS_DISTRIBUTION"]
    assert balance["strategy"]["target"]["dog"] == 0.5
    recommended = selection_config("recommended", 5)  # reads no predictions: any model.task
    assert not [e for e in recommended["strategies"] if e["input"].get("task")]


@pytest.mark.slow
def test_bench_al_quick_runs_the_whole_loop(tmp_path: Path) -> None:
    out = tmp_path / "al.json"
    env = {**os.environ, "FRAMESIFT_CACHE": os.environ.get("FRAMESIFT_CACHE", str(tmp_path / "cache"))}
    command = [FRAMESIFT, "bench", "al", "--quick", "--out", str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert set(doc["methods"]) == set(METHODS)
    assert doc["seeds"] == [0]
    round0 = {json.dumps(m["rounds"][0], sort_keys=True) for m in doc["methods"].values()}
    assert len(round0) == 1  # one random seed set, shared by every method
    for name, method in doc["methods"].items():
        assert [r["labelled"] for r in method["rounds"]] == [8, 16], name
        for entry in method["rounds"]:
            for key in ("map50_95", "map50", "coverRadius", "nearDuplicatePairs", "trackCoverage", "rareClassRecall"):
                assert set(entry[key]) == {"mean", "sd"} and entry[key]["sd"] == 0.0, (name, key)
            assert 0.0 <= entry["map50_95"]["mean"] <= entry["map50"]["mean"] <= 1.0
            assert 0.0 <= entry["trackCoverage"]["mean"] <= 1.0
    assert "bench al: seed 0, recommended, round 1/1" in result.stderr  # progress as log lines
    assert (tmp_path / "al.png").stat().st_size > 0
    table = (tmp_path / "al.md").read_text().splitlines()
    assert len(table) == 2 + 2 * len(METHODS) and table[2].startswith("| random | 8 |")
    ledger = [json.loads(line) for line in (tmp_path / "al-work" / "ledger.jsonl").read_text().splitlines()]
    for entry in ledger:
        frames = entry["record"]["frames"]
        assert len(frames) == len(set(frames)), entry["key"]  # no frame labelled twice
    # the same pool's frames, no retraining: every way of picking measured on the reference run
    picks = subprocess.run(
        [FRAMESIFT, "bench", "picks", str(tmp_path / "al-work" / "reference" / "run.yaml"), "--n", "8"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert picks.returncode == 0, picks.stderr[-3000:]
    measured = json.loads(picks.stdout)
    assert measured["frames"] == 180 and measured["picks"] == 8
    assert {"uniform in time", "frame DIVERSITY", "object DIVERSITY (mean, opt-in)", "recommended"} <= set(
        measured["table"]
    )
    for name, row in measured["table"].items():
        assert 0.0 <= row["coverRadius"] <= 2.0 and row["nearDuplicatePairs"] <= 28, name
    # a rerun goes on from the finished rounds: same numbers, nothing trained again
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(out.read_text())["methods"] == doc["methods"]
    assert "pretraining" not in again.stderr and len(ledger) == len(
        (tmp_path / "al-work" / "ledger.jsonl").read_text().splitlines()
    )


def test_the_recommended_config_file_is_the_one_the_report_names() -> None:
    import json as json_module

    from framesift.api.selection_config import SelectionConfig
    from framesift.jobs.bench_al.loop import EXAMPLES

    recommended = json_module.loads((EXAMPLES / "recommended_selection_config.json").read_text())
    assert SelectionConfig.model_validate(recommended).is_recommended()
    assert SelectionConfig.model_validate({**recommended, "n_samples": 7}).is_recommended()
    assert not SelectionConfig.model_validate(selection_config("frame_diversity", 7)).is_recommended()
