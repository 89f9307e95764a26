"""A labelled video benchmark made here, deterministically from a seed (no labelled video can be
downloaded): short street videos of several scene kinds with ground-truth boxes and track ids.

What makes it video rather than an image collection, and what active learning must cope with:

- long still stretches (everything stops; only sensor noise changes): most frames are redundant;
- scene kinds: day, dusk, night (dark and noisy), a panning camera, crowds of small people,
  poles that occlude what passes behind them;
- a rare class (`dog`, in under 3 % of the pool's frames, in two pool videos) and a rare event (a
  person lying on the ground, in one pool video only);
- split by video into a pool (selection draws from it), a validation set (for choosing any
  parameter) and a held-out test set that never takes part in selection or tuning.

Bump BENCHMARK_VERSION whenever what a seed produces changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

BENCHMARK_VERSION = "al-v2"  # v2: objects hidden behind others or poles are not labelled
CLASSES = {0: "person", 1: "bicycle", 2: "car", 3: "dog"}
RARE_CLASS = 3
SIZE = (320, 192)  # width, height
FPS = 10
SCENE_KINDS = ("day", "dusk", "night", "pan", "crowd", "occluded")
LIGHT = {"day": 1.0, "dusk": 0.55, "night": 0.25, "pan": 0.9, "crowd": 1.0, "occluded": 0.85}
MIN_VISIBLE = 0.4  # an object is labelled when at least this share of its pixels shows
SPLITS = ("pool", "val", "test")


@dataclass(frozen=True)
class Shape:
    """How big the benchmark is: videos per split and frames per video."""

    pool: int = 24
    val: int = 4
    test: int = 8
    frames: int = 60

    def count(self, split: str) -> int:
        return int(getattr(self, split))


QUICK_SHAPE = Shape(pool=6, val=2, test=2, frames=30)


@dataclass
class Track:
    track_id: int
    cls: int
    x: float
    y: float
    w: int
    h: int
    vx: float
    vy: float
    colour: tuple[int, int, int]
    lying: bool = False  # the rare event: a person on the ground
    frames: tuple[int, int] = (0, 1 << 30)  # [first, last) frame in which it is present


@dataclass
class VideoPlan:
    name: str
    split: str
    kind: str
    tracks: list[Track]
    still_from: int  # frames from here on: nothing moves (the redundant stretch)
    background: np.ndarray
    poles: list[tuple[int, int]] = field(default_factory=list)  # (x, width) of occluders
    pan_speed: float = 0.0


def _size(rng: np.random.Generator, cls: int, scale: float) -> tuple[int, int]:
    w, h = {
        0: (rng.integers(12, 22), rng.integers(34, 60)),
        1: (rng.integers(34, 50), rng.integers(18, 28)),
        2: (rng.integers(56, 92), rng.integers(28, 42)),
        3: (rng.integers(22, 32), rng.integers(14, 20)),
    }[cls]
    return max(4, int(w * scale)), max(4, int(h * scale))


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A street: sky-ish top, buildings as blocks, a road band; textured so frames differ by place."""
    img = np.empty((height, width, 3), np.float32)
    sky, road = rng.integers(90, 200, 3), rng.integers(50, 120, 3)
    horizon = int(height * rng.uniform(0.3, 0.5))
    img[:horizon] = sky
    img[horizon:] = road
    x = 0
    while x < width:
        bw, bh = int(rng.integers(20, 70)), int(rng.integers(horizon // 3, horizon + 1))
        img[horizon - bh : horizon, x : x + bw] = rng.integers(40, 220, 3)
        x += bw + int(rng.integers(0, 15))
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw(img: np.ndarray, t: Track, x: int, y: int) -> None:
    c, w, h = t.colour, t.w, t.h
    if t.cls == 0 and t.lying:  # lying down: the same figure turned flat
        cv2.ellipse(img, (x + w * 3 // 5, y + h // 2), (w * 2 // 5, h // 2), 0, 0, 360, c, -1)
        cv2.circle(img, (x + w // 6, y + h // 2), max(2, h // 3), c, -1)
    elif t.cls == 0:
        cv2.ellipse(img, (x + w // 2, y + h * 3 // 5), (w // 2, h * 2 // 5), 0, 0, 360, c, -1)
        cv2.circle(img, (x + w // 2, y + h // 6), max(2, w // 3), c, -1)
    elif t.cls == 1:
        r = h // 2
        cv2.circle(img, (x + r, y + r), max(1, r - 1), c, 2)
        cv2.circle(img, (x + w - r, y + r), max(1, r - 1), c, 2)
        cv2.line(img, (x + r, y + r), (x + w - r, y + r), c, 2)
    elif t.cls == 2:
        cv2.rectangle(img, (x, y), (x + w, y + h * 3 // 4), c, -1)
        for cx in (x + w // 4, x + 3 * w // 4):
            cv2.circle(img, (cx, y + h * 3 // 4), max(2, h // 4), (25, 25, 25), -1)
    else:  # a dog: a low body, a head in front, four legs
        cv2.ellipse(img, (x + w // 2, y + h // 2), (w * 2 // 5, h // 4), 0, 0, 360, c, -1)
        cv2.circle(img, (x + w * 5 // 6, y + h // 4), max(2, h // 4), c, -1)
        for lx in (x + w // 4, x + w // 3, x + w * 2 // 3, x + w * 3 // 4):
            cv2.line(img, (lx, y + h // 2), (lx, y + h - 1), c, 2)


def _track(rng: np.random.Generator, tid: int, cls: int, width: int, height: int, scale: float) -> Track:
    w, h = _size(rng, cls, scale)
    horizon = int(height * 0.35)
    return Track(
        tid,
        cls,
        float(rng.uniform(0, width - w)),
        float(rng.uniform(horizon - h // 2, height - h)),
        w,
        h,
        float(rng.uniform(-3, 3)) * (2.0 if cls == 2 else 1.0),
        float(rng.uniform(-0.4, 0.4)),
        tuple(int(v) for v in rng.integers(0, 255, 3)),  # type: ignore[arg-type]
    )


def plan_video(
    rng: np.random.Generator, name: str, split: str, kind: str, frames: int, rare: bool, event: bool, next_id: int
) -> VideoPlan:
    width, height = SIZE
    pan = kind == "pan"
    world_w = int(width * 1.8) if pan else width
    tracks: list[Track] = []
    if kind == "crowd":
        classes = [0] * int(rng.integers(10, 19))
        scale = 0.6
    else:
        classes = [int(c) for c in rng.choice([0, 0, 1, 2], int(rng.integers(2, 6)))]
        scale = 1.0
    for cls in classes:
        tracks.append(_track(rng, next_id + len(tracks), cls, world_w, height, scale))
    if rare:  # the rare class crosses for a short window
        dog = _track(rng, next_id + len(tracks), RARE_CLASS, world_w, height, 1.0)
        start = int(rng.integers(0, max(1, frames - frames // 4)))
        dog.frames = (start, start + max(3, frames // 4))
        dog.vx = float(rng.choice([-1, 1])) * float(rng.uniform(2, 4))
        tracks.append(dog)
    if event:  # the rare event: someone lying on the ground for part of the video
        person = _track(rng, next_id + len(tracks), 0, world_w, height, 1.0)
        person.w, person.h, person.vx, person.vy, person.lying = person.h, person.w, 0.0, 0.0, True
        person.x = min(person.x, world_w - person.w - 1)
        start = int(rng.integers(0, frames // 2))
        person.frames = (start, start + frames // 3)
        tracks.append(person)
    still_share = float(rng.uniform(0.4, 0.7))
    still_from = int(frames * (1 - still_share))
    poles = []
    if kind == "occluded":
        poles = [(int(rng.integers(0, width - 12)), int(rng.integers(8, 16))) for _ in range(3)]
    return VideoPlan(
        name,
        split,
        kind,
        tracks,
        still_from,
        _background(rng, world_w, height),
        poles,
        pan_speed=float(rng.uniform(1.5, 3.0)) if pan else 0.0,
    )


def render(
    plan: VideoPlan, frames: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[list[dict[str, Any]]]]:
    """Frames (BGR) and, per frame, the ground truth: track id, class, box (x1, y1, x2, y2) px."""
    width, height = SIZE
    light = LIGHT[plan.kind]
    images, truth = [], []
    positions = {t.track_id: (t.x, t.y) for t in plan.tracks}
    offset = 0.0
    world_w = plan.background.shape[1]
    for i in range(frames):
        moving = i < plan.still_from
        if moving and plan.pan_speed:
            offset = min(offset + plan.pan_speed, world_w - width)
        ox = int(offset)
        world = plan.background.copy()
        owner = np.full(world.shape[:2], -1, np.int32)  # which track each pixel shows (drawn last wins)
        drawn: list[tuple[Track, int, int, int]] = []
        for t in plan.tracks:
            x, y = positions[t.track_id]
            if moving:
                x = (x + t.vx) % max(1.0, world_w - t.w)
                y = float(np.clip(y + t.vy, height * 0.2, height - t.h))
                positions[t.track_id] = (x, y)
            if not t.frames[0] <= i < t.frames[1]:
                continue
            _draw(world, t, int(x), int(y))
            silhouette = np.zeros(world.shape[:2], np.uint8)
            _draw(silhouette, t, int(x), int(y))
            owner[silhouette > 0] = t.track_id
            drawn.append((t, int(x), int(y), int((silhouette > 0).sum())))
        for px, pw in plan.poles:
            owner[:, ox + px : ox + px + pw] = -1
        in_frame = owner[:, ox : ox + width]
        boxes = []
        for t, x, y, area in drawn:
            # labelled when enough of it shows: not hidden by what passes in front, a pole, the border
            visible = int((in_frame == t.track_id).sum()) / max(1, area)
            x1, y1, x2, y2 = x - ox, y, x - ox + t.w, y + t.h
            cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
            if visible >= MIN_VISIBLE and cx2 - cx1 >= 3 and cy2 - cy1 >= 3:
                boxes.append({"track": t.track_id, "cls": t.cls, "box": [cx1, cy1, cx2, cy2]})
        img = world[:, ox : ox + width].astype(np.float32)
        for px, pw in plan.poles:
            img[:, px : px + pw] = (60, 60, 70)
        lit = img * light + rng.normal(0, 2.0 if light > 0.5 else 6.0, img.shape)
        images.append(np.clip(lit, 0, 255).astype(np.uint8))
        truth.append(boxes)
    return images, truth


def write_video(path: Path, images: list[np.ndarray]) -> None:
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=FPS)
    assert isinstance(stream, av.VideoStream)
    stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
    stream.options = {"crf": "18", "preset": "veryfast"}
    for img in images:
        for packet in stream.encode(av.VideoFrame.from_ndarray(img[:, :, ::-1].copy(), format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def video_plans(seed: int, shape: Shape) -> list[tuple[str, str, str, bool, bool]]:
    """(name, split, kind, rare class present, rare event present) for every video of the seed."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for split in SPLITS:
        n = shape.count(split)
        offset = int(rng.integers(0, len(SCENE_KINDS)))  # every kind in turn: each split has them all
        kinds = [SCENE_KINDS[(i + offset) % len(SCENE_KINDS)] for i in range(n)]
        rare = set(rng.choice(n, size=min(n, 2), replace=False).tolist()) if n else set()
        event = {int(rng.integers(0, n))} if n else set()
        for i, kind in enumerate(kinds):
            out.append((f"{split}-{i:02d}-{kind}.mp4", split, kind, i in rare, i in event))
    return out


def build(root: Path, seed: int = 0, shape: Shape = Shape()) -> dict[str, Any]:
    """Write the benchmark under root: videos/<split>/<name>.mp4, images/<split>/<stem>_<i>.png
    (decoded from the written videos, so training sees what inference sees), labels/<split>/… in
    YOLO format, and truth.json (every box with its track). Skipped when root holds this build."""
    identity = {"version": BENCHMARK_VERSION, "seed": seed, "shape": shape.__dict__}
    stamp = root / "benchmark.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("identity") == identity:
        return dict(json.loads(stamp.read_text()))
    width, height = SIZE
    truth: dict[str, Any] = {}
    next_id = 0
    for name, split, kind, rare, event in video_plans(seed, shape):
        rng = np.random.default_rng([seed, 2, len(truth)])
        plan = plan_video(rng, name, split, kind, shape.frames, rare, event, next_id)
        next_id += len(plan.tracks)
        images, boxes = render(plan, shape.frames, rng)
        (root / "videos" / split).mkdir(parents=True, exist_ok=True)
        video_path = root / "videos" / split / name
        write_video(video_path, images)
        stem = name.rsplit(".", 1)[0]
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        with av.open(str(video_path)) as container:
            decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
        for i, (img, frame_boxes) in enumerate(zip(decoded, boxes, strict=True)):
            cv2.imwrite(str(root / "images" / split / f"{stem}_{i:04d}.png"), img)
            lines = [yolo_line(b, width, height) for b in frame_boxes]
            (root / "labels" / split / f"{stem}_{i:04d}.txt").write_text("".join(line + "\n" for line in lines))
        truth[name] = {"split": split, "kind": kind, "rare": rare, "event": event, "frames": boxes}
    (root / "truth.json").write_text(json.dumps(truth))
    summary = {"identity": identity, "videos": {s: [n for n, v in truth.items() if v["split"] == s] for s in SPLITS}}
    summary["stats"] = stats(truth)
    stamp.write_text(json.dumps(summary, indent=1))
    return summary


def stats(truth: dict[str, Any]) -> dict[str, Any]:
    """Per split: frames, boxes per class, the rare class's share of frames, distinct tracks."""
    out: dict[str, Any] = {}
    for split in SPLITS:
        videos = [v for v in truth.values() if v["split"] == split]
        frames = [f for v in videos for f in v["frames"]]
        per_class = {CLASSES[c]: sum(b["cls"] == c for f in frames for b in f) for c in CLASSES}
        rare_frames = sum(any(b["cls"] == RARE_CLASS for b in f) for f in frames)
        out[split] = {
            "videos": len(videos),
            "frames": len(frames),
            "boxes": per_class,
            "rareClassFrameShare": round(rare_frames / max(1, len(frames)), 4),
            "tracks": len({b["track"] for f in frames for b in f}),
        }
    return out


def image_path(root: Path, split: str, video: str, index: int) -> Path:
    return root / "images" / split / f"{video.rsplit('.', 1)[0]}_{index:04d}.png"


def data_yaml(root: Path, train: Path | str, val: Path | str, dest: Path) -> Path:
    """An Ultralytics data file: `train`/`val` a folder of images or a list file of image paths."""
    names = ", ".join(f"{k}: {v}" for k, v in CLASSES.items())
    dest.write_text(f"path: {root}\ntrain: {train}\nval: {val}\nnames: {{{names}}}\n")
    return dest


def pretraining_images(root: Path, count: int, seed: int) -> Path:
    """Stills of the common classes by day and dusk, no crowds, no dogs, nobody lying: the generic
    detector a team starts from (what COCO weights are to real cameras). Never the benchmark's
    videos: another seed stream. Returns the images folder (labels beside it)."""
    width, height = SIZE
    for folder in ("images", "labels"):
        (root / folder / "train").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rng = np.random.default_rng([seed, 3, i])
        kind = ("day", "dusk", "pan", "occluded")[i % 4]
        plan = plan_video(rng, f"pre-{i}", "pretrain", kind, 8, rare=False, event=False, next_id=0)
        images, boxes = render(plan, 1 + int(rng.integers(0, 8)), rng)
        cv2.imwrite(str(root / "images" / "train" / f"{i:05d}.png"), images[-1])
        lines = [yolo_line(b, width, height) for b in boxes[-1]]
        (root / "labels" / "train" / f"{i:05d}.txt").write_text("".join(line + "\n" for line in lines))
    return root / "images" / "train"


def yolo_line(b: dict[str, Any], width: int, height: int) -> str:
    x1, y1, x2, y2 = b["box"]
    cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
    return f"{b['cls']} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"
