"""Train (once, then cached) the demo's small detector on synthetic street scenes.

Model weights cannot be downloaded on the machines framesift is built on, and a network with
random weights finds nothing real. So the demo trains its own yolov8n, from scratch, on
still scenes of three drawn classes (person, bicycle, car) and runs it over videos of the same
kind of scenes: real detections, real class balance, real uncertainty, all made here.
About 6 minutes on 2 CPU cores the first time; the weights are cached in $FRAMESIFT_CACHE.

    .venv/bin/python examples/train_demo_detector.py [DEST.pt]
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from framesift.jobs.model import prepare_ultralytics_env
from framesift.jobs.storage import cache_dir
from framesift.jobs.synthetic_video import SCENE_CLASSES, scene_image

VERSION = "v1"  # bump when the scenes or the training change: a new cache entry
TRAIN, VAL, EPOCHS, IMGSZ = 300, 50, 30, 256


def make_dataset(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", TRAIN), ("val", VAL)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, labels = scene_image(rng)
            cv2.imwrite(str(root / "images" / split / f"{i:05d}.png"), image)
            lines = [f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, x, y, w, h in labels]
            (root / "labels" / split / f"{i:05d}.txt").write_text("\n".join(lines) + "\n")
    names = ", ".join(f"{k}: {v}" for k, v in SCENE_CLASSES.items())
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {{{names}}}\n")
    return root / "data.yaml"


def trained_weights() -> Path:
    cached = cache_dir() / "demo-detector" / VERSION / "demo-detector.pt"
    if cached.exists():
        print(f"demo detector: cached at {cached}", file=sys.stderr)
        return cached
    prepare_ultralytics_env()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    from ultralytics import YOLO

    work = cached.parent / "work"
    shutil.rmtree(work, ignore_errors=True)
    data = make_dataset(work / "dataset")
    print(
        f"demo detector: training yolov8n from scratch on {TRAIN} synthetic scenes, {EPOCHS} epochs "
        "(about 6 minutes on 2 CPU cores, once)",
        file=sys.stderr,
    )
    torch.manual_seed(0)
    model = YOLO("yolov8n.yaml")
    model.train(
        data=str(data),
        epochs=EPOCHS,
        imgsz=IMGSZ,
        batch=16,
        workers=0,
        plots=False,
        amp=False,
        device="cpu",
        project=str(work / "runs"),
        name="demo",
        exist_ok=True,
        verbose=False,
        pretrained=False,
        seed=0,
        deterministic=True,
    )
    best = work / "runs" / "demo" / "weights" / "best.pt"
    shutil.copyfile(best, cached)
    shutil.rmtree(work, ignore_errors=True)
    return cached


def main() -> None:
    weights = trained_weights()
    if len(sys.argv) > 1:
        dest = Path(sys.argv[1])
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, dest)
        print(f"demo detector: {dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
