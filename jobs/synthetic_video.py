"""Synthetic clips for demos and tests when no real footage is at hand (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def synthetic_video(
    path: Path,
    frames: int = 40,
    size: tuple[int, int] = (160, 96),
    fps: int = 10,
    codec: str = "mpeg4",
    seed: int = 0,
    still_from: int | None = None,
) -> Path:
    """A moving square on a noisy background; frames from `still_from` on repeat one image."""
    rng = np.random.default_rng(seed)
    w, h = size
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    if codec == "mpeg4":
        stream.options = {"qscale": "2"}
    still = None
    for i in range(frames):
        if still_from is not None and i > still_from and still is not None:
            img = still
        else:
            img = rng.integers(40, 200, (h, w, 3), dtype=np.uint8)
            x = (i * 5) % max(1, w - 20)
            img[20:40, x : x + 20] = (255, 0, 0)
            if still_from is not None and i == still_from:
                still = img
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path
