"""The one-pass detector gives Ultralytics' own predictions, plus an embedding from the same pass."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from framesift.api.models import ModelSpec
from framesift.jobs.model import ModelError, OnePassDetector, load_model, prepare_ultralytics_env
from framesift.jobs.video import decode


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A yolov8n with random weights whose class biases are spread, so it finds boxes with
    scores across (0, 1): enough to compare box for box."""
    prepare_ultralytics_env()
    from ultralytics import YOLO

    torch.manual_seed(3)
    yolo = YOLO("yolov8n.yaml")
    with torch.no_grad():
        for module in yolo.model.modules():  # random init shrinks activations layer by layer: undo it
            if isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(2.0)
        for branch in yolo.model.model[-1].cv3:
            branch[-1].bias.uniform_(-4.0, 0.0)
    path = tmp_path_factory.mktemp("weights") / "spread.pt"
    yolo.save(str(path))
    return path


def test_boxes_match_ultralytics_predict(weights: Path, real_videos: Path) -> None:
    from ultralytics import YOLO

    frames = [f.image for f in decode(real_videos / "bikes.mp4", stride=50)]
    spec = ModelSpec(weights=str(weights), conf=0.3, iou=0.7, imgsz=320, batch=1)
    detector = OnePassDetector(load_model(spec), spec)
    ours = []
    for frame in frames:  # one image per pass, as predict() on a single image does
        dets, embedding = detector([frame])
        ours += dets
        assert embedding.shape == (1, 448) and np.isfinite(embedding).all()
    reference = YOLO(str(weights))
    total = 0
    matched = 0
    for frame, det in zip(frames, ours, strict=True):
        ref = reference.predict(frame, conf=0.3, iou=0.7, imgsz=320, verbose=False)[0].boxes.data.cpu().numpy()
        total += len(ref)
        if not len(ref):
            assert not len(det.scores)
            continue
        ref_xywh = np.stack([ref[:, 0], ref[:, 1], ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1]], axis=1)
        # the same set of (class, score, box), whatever the order among equal scores
        ours_rows = Counter(
            zip(
                det.class_ids.tolist(),
                np.round(det.scores, 3).tolist(),
                [tuple(b) for b in np.round(det.boxes_xywh).astype(int).tolist()],
                strict=True,
            )
        )
        ref_rows = Counter(
            zip(
                ref[:, 5].astype(int).tolist(),
                np.round(ref[:, 4], 3).tolist(),
                [tuple(b) for b in np.round(ref_xywh).astype(int).tolist()],
                strict=True,
            )
        )
        matched += sum((ours_rows & ref_rows).values())
        assert det.probabilities is not None and np.allclose(det.probabilities.sum(axis=1), 1, atol=1e-4)
    # Floating-point noise between two runs of the same network can flip a box at the NMS IoU
    # boundary among near-equal scores; everything else must be the same boxes.
    assert total > 20 and matched >= 0.95 * total, (matched, total)


def test_classes_keep_only_the_named_ids(weights: Path, real_videos: Path) -> None:
    frames = [f.image for f in decode(real_videos / "bikes.mp4", stride=50)]
    every = ModelSpec(weights=str(weights), conf=0.3, imgsz=320)
    found = {int(c) for d in OnePassDetector(load_model(every), every)(frames)[0] for c in d.class_ids}
    assert len(found) >= 2  # this model finds several classes
    keep = min(found)
    spec = ModelSpec(weights=str(weights), conf=0.3, imgsz=320, classes={"kept": keep})
    detections, _ = OnePassDetector(load_model(spec), spec)(frames)
    kept = np.concatenate([d.class_ids for d in detections])
    assert len(kept) and set(kept.tolist()) == {keep}
    assert all(d.probabilities is None or d.probabilities.shape[1] == 1 for d in detections)


def test_weights_errors_name_the_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model\.weights 'nowhere/model\.pt': no such file"):
        load_model(ModelSpec(weights="nowhere/model.pt"))
    not_a_model = tmp_path / "broken.pt"
    not_a_model.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="could not be loaded"):
        load_model(ModelSpec(weights=str(not_a_model)))
    with pytest.raises(ModelError, match=r"offline, pass a local \.pt path or an s3:// URI"):
        load_model(ModelSpec(weights="yolov8x.pt"))


def test_relative_weights_resolve_next_to_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from framesift.jobs.model import resolve_weights

    (tmp_path / "run" / "models").mkdir(parents=True)
    (tmp_path / "run" / "models" / "det.pt").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    assert resolve_weights("models/det.pt", tmp_path / "run") == tmp_path / "run" / "models" / "det.pt"
    with pytest.raises(ModelError, match="no such file"):
        resolve_weights("models/det.pt")  # not under the working folder


def test_object_embeddings_pool_the_same_features_inside_each_box(weights: Path, real_videos: Path) -> None:
    """A box over the whole input averages every cell: its object embedding IS the frame
    embedding (global average). Smaller boxes differ from it and from each other."""
    frames = [f.image for f in decode(real_videos / "bikes.mp4", stride=100)][:2]
    spec = ModelSpec(weights=str(weights), conf=0.3, iou=0.7, imgsz=320, batch=2)
    detector = OnePassDetector(load_model(spec), spec)
    tensor = detector.preprocess(frames)
    _, frame_embeddings = detector.forward(tensor)
    h, w = tensor.shape[2:]
    whole = torch.tensor([[0.0, 0.0, float(w), float(h)]])
    left, right = torch.tensor([[0.0, 0.0, w / 2, float(h)]]), torch.tensor([[w / 2, 0.0, float(w), float(h)]])
    objects = detector.box_embeddings([whole, torch.cat([left, right])], (h, w))
    assert objects.shape == (3, 448)
    np.testing.assert_allclose(objects[0], frame_embeddings[0], rtol=1e-4, atol=1e-5)

    def apart(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    assert apart(objects[1], objects[2]) > 0.05 and apart(objects[1], frame_embeddings[1]) > 0.05
    # the two halves average to the whole frame (equal areas on a grid of even width)
    np.testing.assert_allclose((objects[1] + objects[2]) / 2, frame_embeddings[1], rtol=1e-3, atol=1e-6)
    # and the detector hands every kept box its own embedding
    dets, _ = detector(frames)
    for det in dets:
        assert det.embeddings is not None and det.embeddings.shape == (len(det.scores), 448)
        assert np.isfinite(det.embeddings).all()
