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
    assert isinstance(stream, av.VideoStream)
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


# ----- synthetic street scenes (the demo's self-trained detector and its videos) ------------------

SCENE_CLASSES = {0: "person", 1: "bicycle", 2: "car"}


def _draw(img: np.ndarray, cls: int, x: int, y: int, w: int, h: int, colour: tuple[int, int, int]) -> None:
    import cv2

    if cls == 0:  # a person: an upright ellipse with a head
        cv2.ellipse(img, (x + w // 2, y + h * 3 // 5), (w // 2, h * 2 // 5), 0, 0, 360, colour, -1)
        cv2.circle(img, (x + w // 2, y + h // 6), max(2, w // 3), colour, -1)
    elif cls == 1:  # a bicycle: two wheels and a frame
        r = h // 2
        cv2.circle(img, (x + r, y + r), r - 1, colour, 2)
        cv2.circle(img, (x + w - r, y + r), r - 1, colour, 2)
        cv2.line(img, (x + r, y + r), (x + w - r, y + r), colour, 2)
    else:  # a car: a body with two dark wheels
        cv2.rectangle(img, (x, y), (x + w, y + h * 3 // 4), colour, -1)
        for cx in (x + w // 4, x + 3 * w // 4):
            cv2.circle(img, (cx, y + h * 3 // 4), h // 4, (25, 25, 25), -1)


def _size(rng: np.random.Generator, cls: int) -> tuple[int, int]:
    if cls == 0:
        return int(rng.integers(12, 22)), int(rng.integers(34, 64))
    if cls == 1:
        return int(rng.integers(34, 52)), int(rng.integers(18, 28))
    return int(rng.integers(56, 96)), int(rng.integers(28, 44))


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.integers(70, 190, 3)
    ramp = np.linspace(-25, 25, h)[:, None, None]
    noise = rng.integers(-12, 12, (h, w, 3))
    return np.clip(base[None, None, :] + ramp + noise, 0, 255).astype(np.uint8)


def scene_image(rng: np.random.Generator, size: tuple[int, int] = (256, 192)) -> tuple[np.ndarray, list[tuple]]:
    """One still street scene and its YOLO labels (class, cx, cy, w, h normalised)."""
    w, h = size
    img = _background(rng, h, w)
    labels = []
    for _ in range(int(rng.integers(1, 6))):
        cls = int(rng.integers(0, 3))
        bw, bh = _size(rng, cls)
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        r, g, b = (int(v) for v in rng.integers(0, 255, 3))
        _draw(img, cls, x, y, bw, bh, (r, g, b))
        labels.append((cls, (x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h))
    return img, labels


def scene_video(
    path: Path, frames: int = 150, size: tuple[int, int] = (320, 192), fps: int = 15, cut_every: int = 50, seed: int = 0
) -> Path:
    """Objects moving across a street; a hard cut to a new scene every `cut_every` frames."""
    rng = np.random.default_rng(seed)
    w, h = size
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    objects: list[list[float]] = []
    background = _background(rng, h, w)
    for i in range(frames):
        if i % cut_every == 0:
            background = _background(rng, h, w)
            objects = []
            for _ in range(int(rng.integers(2, 6))):
                cls = int(rng.integers(0, 3))
                bw, bh = _size(rng, cls)
                objects.append(
                    [
                        cls,
                        float(rng.integers(0, w - bw)),
                        float(rng.integers(0, h - bh)),
                        bw,
                        bh,
                        float(rng.uniform(-3, 3)),
                        *[int(v) for v in rng.integers(0, 255, 3)],
                    ]
                )
        img = background.copy()
        for obj in objects:
            cls, x, y, bw, bh, vx = int(obj[0]), obj[1], obj[2], int(obj[3]), int(obj[4]), obj[5]
            _draw(img, cls, int(x) % max(1, w - bw), int(y), bw, bh, (int(obj[6]), int(obj[7]), int(obj[8])))
            obj[1] = x + vx
        for packet in stream.encode(av.VideoFrame.from_ndarray(img[:, :, ::-1].copy(), format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path
