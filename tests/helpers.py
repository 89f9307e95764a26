"""Test helpers: manifests and synthetic videos made on the spot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import yaml


def manifest(name: str, input_uri: str, output_uri: str, **spec: Any) -> dict[str, Any]:
    model = {"weights": "yolov8n.yaml", "imgsz": 160, "batch": 16, "conf": 0.0001, "classes": {"person": 0, "car": 2}}
    model.update(spec.pop("model", {}))
    doc: dict[str, Any] = {
        "apiVersion": "framesift.dev/v1alpha1",
        "kind": "ActiveLearningRun",
        "metadata": {"name": name},
        "spec": {"input": {"uri": input_uri}, "output": {"uri": output_uri}, "model": model},
    }
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(doc["spec"].get(key), dict):
            doc["spec"][key].update(value)
        else:
            doc["spec"][key] = value
    return doc


def write_manifest(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


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
        if still_from is not None and i >= still_from and still is not None:
            img = still
        else:
            img = rng.integers(40, 200, (h, w, 3), dtype=np.uint8)
            x = (i * 5) % max(1, w - 20)
            img[20:40, x : x + 20] = (255, 0, 0)
            if still_from is not None and i == still_from:
                still = img
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path
