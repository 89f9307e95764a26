"""Containers and codecs cameras and tools actually produce: every frame decodes and counts, and
exact extraction equals a sequential decode on each of them."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from framesift.jobs.video import DecodeLog, decode, extract_frames, frame_name

FRAMES = 37  # odd, and more than one GOP for most encoders below


def encode(
    path: Path,
    codec: str,
    container_format: str | None = None,
    pix_fmt: str = "yuv420p",
    size: tuple[int, int] = (96, 64),
    options: dict[str, str] | None = None,
    rate: int = 25,
) -> Path:
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
        stream.options = {"g": "8", **(options or {})}
        for i in range(FRAMES):
            img = np.full((size[1], size[0], 3), 40, np.uint8)
            img[:, :, 0] = rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)
            img[10:30, (i * 3) % (size[0] - 20) : (i * 3) % (size[0] - 20) + 20] = 250
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


CASES = [
    ("clip.mp4", "libx264", None, {"bf": "2"}),  # B-frames: decode order ≠ packet order
    ("clip.mov", "libx264", None, {}),
    ("clip.m4v", "libx264", "mp4", {}),
    ("clip.webm", "libvpx-vp9", None, {"deadline": "realtime", "cpu-used": "8"}),
    ("clip.mpg", "mpeg2video", "mpeg", {}),
    ("clip.avi", "mjpeg", None, {}),
    ("clip.hevc", "libx265", "hevc", {"x265-params": "log-level=none:keyint=8"}),  # raw stream: no container
]


@pytest.mark.parametrize(("name", "codec", "fmt", "options"), CASES, ids=[c[0] for c in CASES])
def test_decode_and_extract(tmp_path: Path, name: str, codec: str, fmt: str | None, options: dict) -> None:
    pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    path = encode(tmp_path / name, codec, fmt, pix_fmt=pix_fmt, options=options)
    log = DecodeLog()
    frames = {f.index: f.image for f in decode(path, log=log)}
    assert log.frames == FRAMES and sorted(frames) == list(range(FRAMES)) and not log.errors
    wanted = [0, 1, 9, 17, 18, 30, FRAMES - 1]
    got = dict(extract_frames(path, wanted))
    assert sorted(got) == wanted
    for index in wanted:
        assert np.array_equal(got[index], frames[index]), f"frame {index} differs"
    assert frame_name(name, 9, log.frames) == f"clip-09-{name.rsplit('.', 1)[1]}.png"


def test_odd_sizes_and_ten_bit_video(tmp_path: Path) -> None:
    path = encode(tmp_path / "odd.mp4", "libx264", pix_fmt="yuv420p10le", size=(98, 66))
    frames = list(decode(path))
    assert len(frames) == FRAMES and frames[0].image.shape == (66, 98, 3) and frames[0].image.dtype == np.uint8
    got = dict(extract_frames(path, [5, 33]))
    assert np.array_equal(got[33], frames[33].image)
