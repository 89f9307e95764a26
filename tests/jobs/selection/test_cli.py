"""`framesift select` and `framesift scores` on hand-made LightlyOne layouts with known answers,
and the seed tutorial's five-strategy config on real predictions."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import manifest, write_manifest

REPO = Path(__file__).resolve().parents[3]


def framesift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "framesift"), *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=600,
    )


def select_cli(layout: Path, config: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return framesift("select", "--lightly-dir", str(layout), "--config", str(config), "--out", str(out), *extra)


def write_json(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """Two videos × 3 frames. Boxes: a-0 person 0.9; a-1 none; a-2 car 0.5 + car 0.7;
    b-0 person 0.6; b-1 car 0.8; b-2 none."""
    root = tmp_path / "lightly"
    preds = root / ".lightly" / "predictions"
    write_json(preds / "tasks.json", ["det"])
    write_json(
        preds / "det" / "schema.json",
        {"task_type": "object-detection", "categories": [{"id": 0, "name": "person"}, {"id": 2, "name": "car"}]},
    )
    boxes = {
        "a-0-mp4": [(0, 0.9)],
        "a-1-mp4": [],
        "a-2-mp4": [(2, 0.5), (2, 0.7)],
        "b-0-mp4": [(0, 0.6)],
        "b-1-mp4": [(2, 0.8)],
        "b-2-mp4": [],
    }
    for stem, items in boxes.items():
        write_json(
            preds / "det" / f"{stem}.json",
            {
                "file_name": f"{stem}.png",
                "predictions": [{"category_id": c, "bbox": [1, 2, 10, 20], "score": s} for c, s in items],
            },
        )
    meta = root / ".lightly" / "metadata"
    write_json(
        meta / "schema.json",
        [
            {"name": "video_name", "path": "video_name", "defaultValue": "", "valueDataType": "CATEGORICAL_STRING"},
            {"name": "speed", "path": "speed", "defaultValue": 0, "valueDataType": "NUMERIC_FLOAT"},
        ],
    )
    write_json(meta / "a.json", {"file_name": "a.mp4", "type": "video", "metadata": {"video_name": "a", "speed": 1}})
    write_json(meta / "b.json", {"file_name": "b.mp4", "type": "video", "metadata": {"video_name": "b", "speed": 5}})
    emb = {
        "a-0-mp4.png": [1, 0],
        "a-1-mp4.png": [0.99, 0.1],
        "a-2-mp4.png": [0, 1],
        "b-0-mp4.png": [-1, 0],
        "b-1-mp4.png": [-0.99, -0.1],
        "b-2-mp4.png": [0, -1],
    }
    lines = ["filenames,embedding_0,embedding_1,labels"]
    lines += [f"{name},{x},{y},0" for name, (x, y) in emb.items()]
    (tmp_path / "embeddings.csv").write_text("\n".join(lines) + "\n")
    return root


def test_scores_csv_has_every_frame_with_hand_computed_values(layout: Path, tmp_path: Path) -> None:
    result = framesift("scores", "--lightly-dir", str(layout), "--task", "det", "--out", str(tmp_path / "s.csv"))
    assert result.returncode == 0, result.stderr
    rows = {r["fileName"]: r for r in csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text()))}
    assert sorted(rows) == ["a-0-mp4.png", "a-1-mp4.png", "a-2-mp4.png", "b-0-mp4.png", "b-1-mp4.png", "b-2-mp4.png"]
    assert float(rows["a-2-mp4.png"]["objectness_least_confidence"]) == pytest.approx(0.4)
    assert float(rows["a-1-mp4.png"]["objectness_least_confidence"]) == 0
    # object_frequency raw: a-2 has 1.25 (two cars), the one-box frames 1, empty frames 0
    assert float(rows["a-2-mp4.png"]["object_frequency"]) == pytest.approx(1.0)
    assert float(rows["b-0-mp4.png"]["object_frequency"]) == pytest.approx(0.9 + 0.1 / 1.25)
    assert float(rows["b-2-mp4.png"]["object_frequency"]) == pytest.approx(0.9)
    # score-only box, C = 2 categories → vector length 3: (1 − 0.9)/(1 − 1/3)
    assert float(rows["a-0-mp4.png"]["uncertainty_least_confidence"]) == pytest.approx(0.15)


def test_select_with_embeddings_csv(layout: Path, tmp_path: Path) -> None:
    config = {
        "n_samples": 4,
        "strategies": [
            {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
            {
                "input": {"type": "METADATA", "key": "video_name"},
                "strategy": {"type": "BALANCE", "target": {"a": 0.5, "b": 0.5}},
            },
        ],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "selected.json"
    result = select_cli(
        layout, tmp_path / "config.yaml", out, "--embeddings", str(tmp_path / "embeddings.csv"), "--tag", "t1"
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    assert set(doc) >= {"tag", "selected", "stoppedBecause", "candidates", "filtered"}
    assert doc["tag"] == "t1" and doc["candidates"] == 6
    names = [s["fileName"] for s in doc["selected"]]
    # 1: every score ties → the earliest frame, a-0; 2: video balance wants b, diversity the farthest
    # from a-0 → b-0; 3: balance even, a-2 and b-2 tie on distance → the earlier a-2; 4: balance → b-2
    assert names == ["a-0-mp4.png", "b-0-mp4.png", "a-2-mp4.png", "b-2-mp4.png"]
    assert sorted(s["video"] for s in doc["selected"]) == ["a.mp4", "a.mp4", "b.mp4", "b.mp4"]
    assert doc["selected"][0]["frameIndex"] == 0 and set(doc["selected"][0]["scores"]) == {
        "0:DIVERSITY:embeddings",
        "1:BALANCE:metadata/video_name",
    }

    datapool = tmp_path / "pool.json"
    datapool.write_text(json.dumps(names))
    again = select_cli(
        layout,
        tmp_path / "config.yaml",
        out,
        "--embeddings",
        str(tmp_path / "embeddings.csv"),
        "--datapool",
        str(datapool),
    )
    assert again.returncode == 0, again.stderr
    second = json.loads(out.read_text())
    assert not {s["fileName"] for s in second["selected"]} & set(names)
    assert "only 2 frames are candidates" in second["stoppedBecause"]


def test_select_numeric_metadata_threshold_and_bad_config(layout: Path, tmp_path: Path) -> None:
    config = {
        "n_samples": 10,
        "strategies": [
            {
                "input": {"type": "METADATA", "key": "speed"},
                "strategy": {"type": "THRESHOLD", "threshold": 2, "operation": "BIGGER"},
            },
            {
                "input": {"type": "SCORES", "task": "det", "score": "objectness_least_confidence"},
                "strategy": {"type": "WEIGHTS"},
            },
        ],
    }
    (tmp_path / "c.json").write_text(json.dumps(config))
    out = tmp_path / "s.json"
    result = select_cli(layout, tmp_path / "c.json", out, "--embeddings", str(tmp_path / "embeddings.csv"))
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    # only video b passes; weights: b-0 0.4, b-1 0.2, b-2 0 → order b-0, b-1, b-2
    assert [s["fileName"] for s in doc["selected"]] == ["b-0-mp4.png", "b-1-mp4.png", "b-2-mp4.png"]
    assert doc["filtered"]["threshold:0:THRESHOLD:metadata/speed"] == 3

    config["strategies"][1]["strategy"] = {"type": "BALANCE", "distribution": "UNIFORM"}
    config["n_sample"] = 3
    (tmp_path / "bad.json").write_text(json.dumps(config))
    bad = select_cli(layout, tmp_path / "bad.json", out)
    assert bad.returncode == 2
    assert "n_sample: unknown field; did you mean 'n_samples'" in bad.stderr
    assert "strategies[1]: strategy BALANCE cannot use input SCORES" in bad.stderr


@pytest.mark.slow
def test_seed_config_on_real_predictions_respects_video_balance(real_videos: Path, tmp_path: Path) -> None:
    seed = yaml.safe_load((REPO / "examples" / "pedestrians.yaml").read_text())["spec"]["selection"]
    seed["n_samples"] = 40
    seed["strategies"][-1]["strategy"]["target"] = {"vtest": 0.5, "bikes": 0.5}
    doc = manifest(
        "seed",
        str(real_videos),
        str(tmp_path / "out"),
        selection=seed,
        model={"classes": {"person": 0, "bicycle": 1, "car": 2}, "frameStride": 2},
    )
    run_file = write_manifest(tmp_path / "run.yaml", doc)
    result = framesift("run", str(run_file), "--no-progress")
    assert result.returncode == 0, result.stderr
    selected = json.loads((tmp_path / "out" / "runs" / "seed" / "selected.json").read_text())
    videos = [s["video"] for s in selected["selected"]]
    assert len(videos) == 40 and abs(videos.count("vtest.avi") - videos.count("bikes.mp4")) <= 1
    assert all(len(s["scores"]) == 5 for s in selected["selected"])
    assert any(s.get("novelObjects") for s in selected["selected"])  # object-level diversity ran
    again = framesift("run", str(run_file), "--no-progress")
    assert "unchanged, skipped" in again.stdout


def test_bench_select_runs_and_the_reference_agrees() -> None:
    result = framesift(
        "bench",
        "select",
        "--sizes",
        "5000",
        "--picks",
        "30",
        "--reference-n",
        "1500",
        "--reference-picks",
        "25",
        "--peer",
        "--precision-n",
        "3000",
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["runs"][0]["n"] == 5000 and doc["runs"][0]["picks"] == 30
    assert doc["runs"][0]["peer_kcenter_seconds"] > 0 and doc["runs"][0]["vs_peer"] > 0  # --peer: the ratio
    assert doc["reference"]["identical"] is True
    half = doc["float16"]  # float16 against float32 on the same frames: measured, not assumed equal
    assert half["n"] == 3000 and 0.0 < half["same_picks_share"] <= 1.0
    assert sum(half["per_video_float16"]) == sum(half["per_video_float32"]) == 30
    assert half["coverage_radius_float32"] > 0 and half["coverage_radius_ratio"] > 0


def test_bench_select_from_stored_results_keeps_and_reuses_them(tmp_path: Path) -> None:
    """--from-results: synthetic per-video results written as inference writes them, then
    loaded and selected from as `framesift select --embeddings` does; --results-dir keeps them."""
    args = ["bench", "select", "--sizes", "3000", "--from-results", "40", "--picks", "25", "--dim", "16"]
    args += ["--reference-n", "500", "--reference-picks", "5", "--precision-n", "0", "--results-dir", str(tmp_path)]
    first = framesift(*args)
    assert first.returncode == 0, first.stderr
    run = json.loads(first.stdout)["runs"][0]
    assert run["n"] == 3000 and run["videos"] == 40 and run["picks"] == 25 and run["embeddings"] == "float32"
    assert run["videos_picked"] == 25  # the per-camera BALANCE (UNIFORM): one frame per camera first
    assert run["results_bytes"] > 3000 * 16 * 4 and "reused" not in run
    again = json.loads(framesift(*args).stdout)["runs"][0]
    assert again["reused"] is True and again["picks"] == 25 and again["n"] == 3000
