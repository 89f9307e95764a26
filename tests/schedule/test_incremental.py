"""Repeat it for new videos, on one machine: a second run with --new-only infers exactly the new
video (asserted from the results), picks no frame picked before, and the selections together
stay balanced across all videos; a run with nothing new infers nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from framesift.jobs.results import read_pointer
from framesift.jobs.storage import open_storage
from tests.helpers import manifest, synthetic_video, write_manifest
from tests.jobs.test_dataplane import framesift

pytestmark = pytest.mark.slow


def selection(n: int, names: list[str]) -> dict:
    return {
        "n_samples": n,
        "strategies": [
            {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
            {
                "input": {"type": "METADATA", "key": "video_name"},
                "strategy": {"type": "BALANCE", "target": {name: round(1 / len(names), 4) for name in names}},
            },
        ],
    }


def run(tmp_path: Path, name: str, n: int, names: list[str], *flags: str) -> str:
    doc = manifest(name, "videos/", "out/", selection=selection(n, names), selector={"datapool": True})
    result = framesift("run", str(write_manifest(tmp_path / f"{name}.yaml", doc)), "--no-progress", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def picks(out: Path, run_name: str) -> list[dict]:
    return json.loads((out / "runs" / run_name / "selected.json").read_text())["selected"]


def test_new_only_runs_infer_only_new_videos_and_keep_the_selections_balanced(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    synthetic_video(videos / "gate.mp4", frames=24, seed=1)
    synthetic_video(videos / "yard.mp4", frames=24, seed=2)
    run(tmp_path, "night-1", 4, ["gate", "yard"])

    synthetic_video(videos / "dock.mp4", frames=24, seed=3)  # tonight's new clip
    said = run(tmp_path, "night-2", 2, ["gate", "yard", "dock"], "--new-only")
    assert "2 skipped (inferred by earlier runs: new only)" in said
    # the earlier picks count for diversity and balance although their videos are not inferred again
    assert "2 earlier videos' picks count as datapool" in said
    out = open_storage(str(tmp_path / "out"))
    listed = json.loads(out.read_text(".framesift/runs/night-2/videos.json"))
    assert [v["key"] for v in listed] == ["dock.mp4"]
    assert read_pointer(out, "night-2", "dock.mp4")["status"] == "ok"
    assert read_pointer(out, "night-2", "gate.mp4") is None  # not inferred again: no results for it
    first, second = picks(tmp_path / "out", "night-1"), picks(tmp_path / "out", "night-2")
    assert not {p["fileName"] for p in first} & {p["fileName"] for p in second}
    per_video: dict[str, int] = {}
    for pick in first + second:
        per_video[pick["video"]] = per_video.get(pick["video"], 0) + 1
    assert per_video == {"gate.mp4": 2, "yard.mp4": 2, "dock.mp4": 2}

    said = run(tmp_path, "night-3", 2, ["dock"], "--new-only")
    assert "no new videos" in said
    assert not (tmp_path / "out" / ".framesift" / "runs" / "night-3" / "videos").exists()
    assert json.loads(out.read_text(".framesift/runs/night-3/videos.json")) == []


def test_videos_of_a_failed_run_stay_new_and_are_not_inferred_again(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    synthetic_video(videos / "h.mp4", frames=24, seed=1)
    (videos / "bad.mp4").write_bytes(b"not a video" * 50)
    strict = manifest("fails", "videos/", "out/", selection=selection(2, ["h"]), input={"maxFailedVideos": 0})
    failed = framesift("run", str(write_manifest(tmp_path / "fails.yaml", strict)), "--no-progress")
    assert failed.returncode == 1, failed.stderr[-2000:]  # h.mp4 inferred, then the run failed
    out = open_storage(str(tmp_path / "out"))
    assert read_pointer(out, "fails", "h.mp4")["status"] == "ok"
    assert not out.exists(".framesift/runs/fails/succeeded.json")
    (videos / "bad.mp4").unlink()
    said = run(tmp_path, "next", 2, ["h"], "--new-only")
    assert "skipped (inferred by earlier runs" not in said  # h.mp4 is still new: no run with it succeeded
    assert [p["video"] for p in picks(tmp_path / "out", "next")] == ["h.mp4", "h.mp4"]
    assert read_pointer(out, "next", "h.mp4")["cacheKey"] == read_pointer(out, "fails", "h.mp4")["cacheKey"]
    assert out.exists(".framesift/runs/next/succeeded.json")
    said = run(tmp_path, "after", 2, ["h"], "--new-only")
    assert "no new videos" in said  # now a run with it succeeded
