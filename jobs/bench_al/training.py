"""One fixed training recipe for every method (model size, image size, epochs, augmentation,
seed), Ultralytics training and Ultralytics' validator for mAP."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from framesift.jobs.bench_al import scenes
from framesift.jobs.model import prepare_ultralytics_env
from framesift.jobs.storage import cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a trained model besides its labelled frames."""

    model: str = "yolov8n.yaml"
    imgsz: int = 192
    epochs: int = 15
    batch: int = 16
    mosaic: float = 1.0
    # Fine-tuning: chosen on the validation videos (24 random pool frames, seed 0; mAP50-95 on val:
    # base 0.274, Ultralytics' auto AdamW 0.189-0.210, backbone frozen 0.270, SGD lr0 0.002 0.288)
    freeze: int = 0  # layers kept as the base has them (10: yolov8n's backbone)
    optimizer: str = "SGD"
    lr0: float = 0.002
    replay: int = 0  # the base's own training stills added to every fine-tuning (what it was taught)
    pretrain_images: int = 240
    pretrain_epochs: int = 20

    def base_digest(self) -> str:
        """What decides the pretrained base (not the fine-tuning epochs)."""
        fields = {k: v for k, v in asdict(self).items() if k not in FINE_TUNING_ONLY}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


VAL_STRIDE = 4  # consecutive frames add little to a validation score
FINE_TUNING_ONLY = ("epochs", "freeze", "optimizer", "lr0", "replay")
QUICK_RECIPE = Recipe(epochs=3)  # the same base detector: a weaker one finds nothing at all


def device() -> str:
    """A GPU when there is one (the same recipe; which device gave which figures is recorded)."""
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def _yolo(weights: str) -> Any:
    prepare_ultralytics_env()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    return YOLO(weights)


def _train(
    weights: str, data: Path, epochs: int, recipe: Recipe, seed: int, work: Path, warmup: float, fine_tune: bool
) -> Path:
    import torch

    torch.manual_seed(seed)
    model = _yolo(weights)
    model.train(
        data=str(data),
        epochs=epochs,
        imgsz=recipe.imgsz,
        batch=recipe.batch,
        mosaic=recipe.mosaic,
        close_mosaic=max(1, epochs // 3),
        warmup_epochs=warmup,
        freeze=recipe.freeze if fine_tune else None,
        optimizer=recipe.optimizer if fine_tune else "auto",
        lr0=recipe.lr0 if fine_tune else 0.01,
        workers=0,
        val=fine_tune,  # fine-tuning keeps the epoch best on the validation videos (best.pt)
        plots=False,
        amp=False,
        device=device(),
        project=str(work),
        name="train",
        exist_ok=True,
        verbose=False,
        pretrained=weights.endswith(".pt"),
        seed=seed,
        deterministic=True,
    )
    folder = work / "train" / "weights"
    return folder / "best.pt" if fine_tune and (folder / "best.pt").exists() else folder / "last.pt"


def pretrained_base(root: Path, recipe: Recipe) -> Path:
    """The generic detector every method starts from (scenes.pretraining_images), trained once
    per recipe and cached in $FRAMESIFT_CACHE."""
    cached = cache_dir() / "bench-al" / scenes.BENCHMARK_VERSION / recipe.base_digest() / "base.pt"
    if cached.exists():
        return cached
    work = cached.parent / "work"
    shutil.rmtree(work, ignore_errors=True)
    scenes.pretraining_images(work / "data", recipe.pretrain_images, seed=1000)
    data = scenes.data_yaml(work / "data", "images/train", "images/train", work / "data.yaml")
    log.info(
        "bench al: pretraining the base detector (%s, %d stills, %d epochs, once per recipe)",
        recipe.model,
        recipe.pretrain_images,
        recipe.pretrain_epochs,
    )
    last = _train(recipe.model, data, recipe.pretrain_epochs, recipe, 0, work / "runs", warmup=3.0, fine_tune=False)
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(last, cached)
    shutil.move(work / "data", cached.parent / "stills")  # replayed by fine-tuning
    shutil.rmtree(work, ignore_errors=True)
    return cached


def replay_stills(base: Path, count: int) -> list[Path]:
    """The first `count` of the base's own training stills (labels beside them)."""
    stills = sorted((base.parent / "stills" / "images" / "train").glob("*.png"))
    if count > len(stills):
        raise ValueError(f"replay {count}: the base was trained on {len(stills)} stills")
    return stills[:count]


def train_on(base: Path, images: list[Path], root: Path, recipe: Recipe, seed: int, work: Path) -> Path:
    """Fine-tune `base` on exactly `images` (labels beside them); returns the weights file."""
    work.mkdir(parents=True, exist_ok=True)
    listing = work / "train.txt"
    listing.write_text("".join(f"{p}\n" for p in [*sorted(images), *replay_stills(base, recipe.replay)]))
    # every VAL_STRIDE-th validation frame: the best epoch is chosen on them (never on test videos)
    val_listing = work / "val.txt"
    val_frames = sorted((root / "images" / "val").glob("*.png"))[::VAL_STRIDE]
    val_listing.write_text("".join(f"{p}\n" for p in val_frames))
    data = scenes.data_yaml(root, listing, val_listing, work / "data.yaml")
    # no warm-up: it raises the biases' learning rate to 0.1 for 100 iterations at least, more
    # than a whole fine-tuning on a few dozen frames, and wipes out what the base knows
    last = _train(str(base), data, recipe.epochs, recipe, seed, work / "runs", warmup=0.0, fine_tune=True)
    weights = work / "model.pt"
    shutil.copyfile(last, weights)
    shutil.rmtree(work / "runs", ignore_errors=True)
    return weights


def evaluate(weights: Path, root: Path, split: str, recipe: Recipe, work: Path) -> dict[str, Any]:
    """mAP50-95 and mAP50 on a split with Ultralytics' validator (and the per-class mAP50-95)."""
    work.mkdir(parents=True, exist_ok=True)
    data = scenes.data_yaml(root, root / "images" / split, root / "images" / split, work / "eval.yaml")
    metrics = _yolo(str(weights)).val(
        data=str(data),
        split="val",
        imgsz=recipe.imgsz,
        batch=32,
        conf=0.001,
        iou=0.6,
        workers=0,
        plots=False,
        device=device(),
        verbose=False,
        project=str(work / "val"),
        name="val",
        exist_ok=True,
    )
    shutil.rmtree(work / "val", ignore_errors=True)
    per_class = {
        scenes.CLASSES[int(c)]: round(float(metrics.box.maps[int(c)]), 4)
        for c in scenes.CLASSES
        if int(c) < len(metrics.box.maps)
    }
    return {"map50_95": float(metrics.box.map), "map50": float(metrics.box.map50), "perClass": per_class}
