"""Labelled feedback: frames a COCO file (or a Label Studio export) lists count as datapool —
never selected again, and diversity moves away from them. Known answer on synthetic embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from framesift.api.selection_config import SelectionConfig
from framesift.jobs.labels import _frame_name, references
from framesift.jobs.selection.data import SelectionData, normalize_rows
from framesift.jobs.selection.engine import select

DIVERSITY = SelectionConfig.model_validate(
    {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
)


def two_clusters() -> SelectionData:
    """a0..a2 around one direction, b0..b2 around another, c0 in between but nearer a."""
    rng = np.random.default_rng(0)
    base = {"a": np.array([1.0, 0.0, 0.0]), "b": np.array([0.0, 1.0, 0.0]), "c": np.array([0.9, 0.1, 0.6])}
    names, emb = [], []
    for cluster, count in (("a", 3), ("b", 3), ("c", 1)):
        for i in range(count):
            names.append(f"cam/{cluster}-{i}-mp4.png")
            emb.append(base[cluster] + rng.normal(0, 0.01, 3))
    n = len(names)
    return SelectionData(
        file_names=names,
        videos=np.array(["cam.mp4"] * n, dtype=object),
        frame_index=np.arange(n),
        embeddings=normalize_rows(np.array(emb, np.float32)),
        corrupt=np.zeros(n, bool),
        duplicate_key=np.arange(n).astype(object),
    )


def test_labelled_frames_are_never_selected_and_pull_diversity_away(tmp_path: Path) -> None:
    data = two_clusters()
    unlabelled = [p.file_name for p in select(data, DIVERSITY).picks]
    coco = {"images": [{"id": 1, "file_name": "cam/b-0-mp4.png"}, {"id": 2, "file_name": "cam/b-1-mp4.png"}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    labelled = references(json.loads((tmp_path / "coco.json").read_text()))
    picks = [p.file_name for p in select(data, DIVERSITY, datapool_names=labelled).picks]
    assert not set(picks) & set(labelled)
    # with cluster b labelled, the first pick is the frame farthest from b (not from b itself),
    # and no frame of b is picked again although b was where the unlabelled run went too
    assert any(name.startswith("cam/b-") for name in unlabelled)
    assert not any(name.startswith("cam/b-") for name in picks)


def test_label_studio_exports_name_frames_by_their_urls() -> None:
    tasks = [
        {"data": {"image": "https://bucket.s3.amazonaws.com/out/frames/cam/a-0-mp4.png?X-Amz-Signature=abc"}},
        {"data": {"image": "s3://bucket/out/frames/cam/b-2-mp4.png"}},
    ]
    assert [_frame_name(r) for r in references(tasks)] == ["cam/a-0-mp4.png", "cam/b-2-mp4.png"]


def test_common_label_studio_shapes_match_and_unmatched_labels_are_counted(tmp_path: Path, caplog) -> None:
    import pytest

    from framesift.jobs.context import load_context
    from framesift.jobs.labels import labelled_frames
    from framesift.jobs.selection.sources import SourceError
    from tests.helpers import manifest, write_manifest

    names = ["gate-06-mp4.png", "q?mark-02-mp4.png", "a b#c-03-mp4.png", "yard-01-mp4.png"]
    data = SelectionData(
        file_names=names,
        videos=np.array(["gate.mp4", "q?mark.mp4", "a b#c.mp4", "yard.mp4"], dtype=object),
        frame_index=np.array([6, 2, 3, 1]),
        embeddings=normalize_rows(np.eye(4, dtype=np.float32)),
        corrupt=np.zeros(4, bool),
        duplicate_key=np.arange(4).astype(object),
    )
    json_min = [
        {"image": "/data/upload/3/5f1b2c3d-gate-06-mp4.png", "id": 1, "label": []},  # JSON-MIN, upload prefix
        {"image": "http://localhost:8080/data/local-files/?d=out/frames/q%3Fmark-02-mp4.png"},
        {"data": {"image": "s3://bucket/out/frames/a b#c-03-mp4.png"}},  # the key whole: '#', ' '
        {"data": {"image": "s3://bucket/elsewhere/other-99-mp4.png"}},  # another output's frame
    ]
    (tmp_path / "labels.json").write_text(json.dumps(json_min))
    doc = manifest("l", "videos/", "out/", selector={"labeled": "labels.json"})
    ctx = load_context(write_manifest(tmp_path / "run.yaml", doc))
    with caplog.at_level("INFO", logger="framesift.jobs.labels"):
        found = labelled_frames(ctx, data)
    assert found == sorted(names[:3])
    assert "3 of 4 labels matched frames of this run; 1 did not" in caplog.text and "other-99" in caplog.text
    (tmp_path / "labels.json").write_text(json.dumps([{"data": {"image": "s3://b/x/nothing-01-mp4.png"}}]))
    with pytest.raises(SourceError, match="none of the 1 labels"):
        labelled_frames(ctx, data)
    for malformed, said in (({"images": ["a.png", 5]}, r"images\[0\]"), ([{"data": "x"}], "item 0's data")):
        (tmp_path / "labels.json").write_text(json.dumps(malformed))
        with pytest.raises(SourceError, match=said):
            labelled_frames(ctx, data)
