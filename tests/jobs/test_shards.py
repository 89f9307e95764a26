"""Inference chunks (resources.infer.videosPerPod), as the Job's pods run them: a bad video
inside a chunk fails itself, not the chunk; a retried chunk finds its done videos in the cache;
each pod writes its videos' LightlyOne prediction files; the convert Job's summary counts every
failed video of the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import manifest, synthetic_video, write_manifest
from tests.jobs.test_dataplane import framesift

pytestmark = pytest.mark.slow


def job(stage: str, run_file: Path, log: Path, *extra: str) -> tuple[int, dict]:
    log.unlink(missing_ok=True)
    result = framesift(
        "job", stage, "--run", str(run_file), "--no-progress", *extra, env={"FRAMESIFT_TERMINATION_LOG": str(log)}
    )
    return result.returncode, (json.loads(log.read_text()) if log.exists() else {"stderr": result.stderr[-2000:]})


def test_a_bad_video_fails_itself_not_its_chunk(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    good = synthetic_video(videos / "a.mp4", frames=12, codec="libx264", seed=1)
    (videos / "b.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated
    synthetic_video(videos / "c.mp4", frames=12, codec="libx264", seed=2)
    synthetic_video(videos / "d.mp4", frames=12, codec="libx264", seed=3)
    doc = manifest("chunks", str(videos), str(tmp_path / "out"), resources={"infer": {"videosPerPod": 2}})
    run_file = write_manifest(tmp_path / "run.yaml", doc)
    log = tmp_path / "termination-log"

    assert job("list", run_file, log)[1]["videos"] == 4
    code, summary = job("infer", run_file, log, "--index", "0")
    assert code == 0, summary
    assert summary["videos"] == [0, 1] and summary["failed"] == 1
    assert summary["failedVideos"][0]["video"] == "b.mp4"
    code, summary = job("infer", run_file, log, "--index", "1")
    assert (code, summary["failed"]) == (0, 0)
    code, again = job("infer", run_file, log, "--index", "0")  # a retried chunk: a.mp4 comes from the cache
    assert code == 0 and again["failed"] == 1
    # each inference pod wrote its videos' prediction files: the convert Job only checks them
    predictions = tmp_path / "out" / ".lightly" / "predictions" / "yolov8_detection"
    assert [len(list(predictions.glob(f"{v}-*.json"))) for v in "abcd"] == [12, 0, 12, 12]
    code, summary = job("convert", run_file, log)
    assert code == 0 and summary["failed"] == 1 and summary["failedVideos"][0]["name"] == "b.mp4"
    failed = json.loads((tmp_path / "out" / "runs" / "chunks" / "failed-videos.json").read_text())
    assert [v["name"] for v in failed] == ["b.mp4"]
    assert job("infer", run_file, log, "--index", "2")[0] == 2  # outside the run's 2 indexes
