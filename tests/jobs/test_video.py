from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from framesift.api.models import InputSpec
from framesift.jobs.quality import frame_quality, uniform_row_ratio
from framesift.jobs.storage import ObjectInfo
from framesift.jobs.video import VideoError, decode, frame_name, select_videos, video_name
from tests.helpers import synthetic_video


def test_frame_names_pad_to_the_decoded_count() -> None:
    assert frame_name("vtest.avi", 7, 795) == "vtest-007-avi.png"
    assert frame_name("dir/clip.avi", 7, 1000) == "dir/clip-0007-avi.png"
    assert frame_name("a/b/c.d.MP4", 12, 99) == "a/b/c.d-12-MP4.png"
    assert frame_name("x.mp4", 0, 9) == "x-0-mp4.png"
    assert video_name("dir/clip.avi") == "clip"


def test_listing_filters_and_sorts() -> None:
    objs = [
        ObjectInfo(k, 1, None, 0)
        for k in ["b.MP4", "a.avi", "notes.txt", ".lightly/x.mp4", "sub/c.mov", "sub/skip.webm", "z.mkv"]
    ]
    chosen = select_videos(objs, InputSpec(uri="/x", exclude=["*skip*"]))
    assert [o.key for o in chosen] == ["a.avi", "b.MP4", "sub/c.mov"]
    only_avi = select_videos(objs, InputSpec(uri="/x", include=["*.avi"]))
    assert [o.key for o in only_avi] == ["a.avi"]
    relevant = select_videos(objs, InputSpec(uri="/x", relevantFilenames=["sub/c.mov"]))
    assert [o.key for o in relevant] == ["sub/c.mov"]


@pytest.mark.parametrize(("name", "count", "size"), [("vtest.avi", 795, (576, 768)), ("bikes.mp4", 250, (272, 640))])
def test_decoding_counts_every_frame(real_videos: Path, name: str, count: int, size: tuple[int, int]) -> None:
    frames = list(decode(real_videos / name, stride=25))
    assert [f.index for f in frames] == list(range(0, count, 25))
    assert frames[0].image.shape == (*size, 3) and frames[0].image.dtype == np.uint8
    assert all(b.time_s > a.time_s for a, b in itertools.pairwise(frames))


def test_garbage_and_empty_files_are_bad_input(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 5000)
    with pytest.raises(VideoError):
        list(decode(garbage))
    good = synthetic_video(tmp_path / "good.mp4", frames=20, codec="libx264")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # moov atom at the end: gone
    with pytest.raises(VideoError):
        list(decode(truncated))


def test_uniform_rows_flag_broken_decoding_not_letterbox() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)
    assert frame_quality(frame).uniform_row_ratio == 0.0
    broken = frame.copy()
    broken[60:90] = (128, 128, 128)  # grey stripes of a lost slice
    assert frame_quality(broken).uniform_row_ratio == pytest.approx(0.3)
    letterboxed = frame.copy()
    letterboxed[:12] = 0
    letterboxed[-12:] = 0
    assert frame_quality(letterboxed).uniform_row_ratio == 0.0
    assert uniform_row_ratio(np.zeros((50, 50), np.uint8)) == 1.0  # a black frame still counts


def test_sharpness_and_brightness() -> None:
    flat = np.full((64, 64, 3), 200, np.uint8)
    edges = flat.copy()
    edges[:, ::2] = 0
    assert frame_quality(flat).sharpness == 0.0 < frame_quality(edges).sharpness
    assert frame_quality(flat).brightness == pytest.approx(200 / 255, abs=0.01)
