"""The results loader (per-video Parquet → SelectionData) against the straightforward loader it
replaced: every video in memory, names as a list, one concatenation, a dict per video for boxes.
Fleet scale must not change what selection sees, below the float16 limit not by a bit."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from framesift.api.models import Location
from framesift.api.selection_config import SelectionConfig
from framesift.jobs import results as results_mod
from framesift.jobs.selection import data as data_mod
from framesift.jobs.selection.data import FrameNames, MetadataColumn, SelectionData, TaskPredictions, normalize_rows
from framesift.jobs.selection.engine import select
from framesift.jobs.selection.sources import SourceError, duplicate_keys, from_results, latest_results
from framesift.jobs.selection.synthetic import write_synthetic_results
from framesift.jobs.storage import Storage, open_storage, prefetch_map
from framesift.jobs.video import frame_name

FLEET_SELECTION: dict[str, Any] = {
    "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {
            "input": {"type": "PREDICTIONS", "task": "yolov8_detection", "name": "CLASS_DISTRIBUTION"},
            "strategy": {"type": "BALANCE", "target": {"person": 0.5, "bicycle": 0.2, "car": 0.3}},
        },
        {
            "input": {"type": "SCORES", "task": "yolov8_detection", "score": "objectness_least_confidence"},
            "strategy": {"type": "WEIGHTS"},
        },
        {
            "input": {"type": "METADATA", "key": "video_name"},
            "strategy": {"type": "BALANCE", "distribution": "UNIFORM"},
        },
    ]
}


def reference_from_results(all_results: list[results_mod.VideoResults], task: str, threshold: float) -> SelectionData:
    """The loader as it was before fleet scale, kept as the reference."""
    ordered = sorted(all_results, key=lambda r: r.video)
    names: list[str] = []
    videos, frames, embs, ratios, hashes = [], [], [], [], []
    box_frame, box_class, box_score, box_probs, box_embs = [], [], [], [], []
    offset = 0
    for res in ordered:
        names.extend(frame_name(res.video, int(i), res.n_frames) for i in res.frame_index)
        videos.append(np.full(len(res.frame_index), res.video, dtype=object))
        frames.append(res.frame_index.astype(np.int64))
        embs.append(res.embeddings)
        ratios.append(res.uniform_row_ratio)
        hashes.append(res.pixel_hash)
        row_of = {int(f): offset + j for j, f in enumerate(res.frame_index)}
        box_frame.append(np.array([row_of[int(f)] for f in res.det_frame], np.int64))
        box_class.append(res.det_class.astype(np.int64))
        box_score.append(res.det_score.astype(np.float64))
        box_probs.append(res.det_probs.astype(np.float64))
        assert res.det_embeddings is not None
        box_embs.append(res.det_embeddings)
        offset += len(res.frame_index)
    ratio = np.concatenate(ratios).astype(np.float64)
    categories = {int(k): v for k, v in ordered[0].manifest["categories"].items()}
    preds = TaskPredictions(
        categories,
        np.concatenate(box_frame),
        np.concatenate(box_class),
        np.concatenate(box_score),
        np.concatenate(box_probs),
        normalize_rows(np.concatenate(box_embs)),
    )
    video_col = np.concatenate(videos)
    stems = np.array([v.rpartition(".")[0] for v in video_col], dtype=object)
    return SelectionData(
        file_names=names,
        videos=video_col,
        frame_index=np.concatenate(frames),
        embeddings=normalize_rows(np.concatenate(embs)),
        corrupt=ratio > threshold,
        duplicate_key=np.concatenate(hashes),
        predictions={task: preds},
        metadata={"video_name": MetadataColumn(stems, False)},
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Storage:
    folder = tmp_path_factory.mktemp("results")
    storage = open_storage(Location(uri=str(folder) + "/"), folder)
    write_synthetic_results(storage, 3000, videos=37, dim=24, objects=True)
    return storage


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two key columns say the same rows are equal (the keys themselves may differ)."""
    return bool((np.unique(a, return_inverse=True)[1] == np.unique(b, return_inverse=True)[1]).all())


def test_the_streaming_loader_gives_what_the_list_loader_gave(store: Storage) -> None:
    handles = latest_results(store)
    assert len(handles) == 37 and all(isinstance(h, results_mod.StoredResults) for h in handles)
    loaded = from_results(handles, "yolov8_detection", 0.25, workers=4)
    reference = reference_from_results([h.load() for h in handles[::-1]], "yolov8_detection", 0.25)
    assert isinstance(loaded.file_names, FrameNames) and list(loaded.file_names) == reference.file_names
    assert (loaded.videos == reference.videos).all() and (loaded.frame_index == reference.frame_index).all()
    assert loaded.embeddings is not None and reference.embeddings is not None
    assert loaded.embeddings.dtype == np.float32 and np.array_equal(loaded.embeddings, reference.embeddings)
    assert (loaded.corrupt == reference.corrupt).all() and 0 < loaded.corrupt.sum() < len(loaded)
    assert loaded.duplicate_key is not None and reference.duplicate_key is not None
    assert loaded.duplicate_key.dtype == np.dtype("S16")
    assert same_partition(loaded.duplicate_key, reference.duplicate_key)
    assert len(np.unique(loaded.duplicate_key)) < len(loaded)  # the synthetic repeats are there
    ours, theirs = loaded.predictions["yolov8_detection"], reference.predictions["yolov8_detection"]
    for name in ("box_frame", "box_class", "box_score", "box_probs", "box_embeddings"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
    assert (loaded.metadata["video_name"].values == reference.metadata["video_name"].values).all()

    config = SelectionConfig.model_validate({"n_samples": 60, **FLEET_SELECTION})
    datapool = [reference.file_names[i] for i in (5, 900, 2999)]
    picks = select(loaded, config, datapool_names=datapool).picks
    assert [p.file_name for p in picks] == [
        p.file_name for p in select(reference, config, datapool_names=datapool).picks
    ]
    assert not {p.file_name for p in picks} & set(datapool)


def test_above_the_float32_limit_embeddings_are_unit_float16(store: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    handles = latest_results(store)
    reference = from_results(handles, "yolov8_detection", 0.25)
    monkeypatch.setattr(data_mod, "FLOAT32_LIMIT_BYTES", 1000)
    half = from_results(handles, "yolov8_detection", 0.25)
    assert half.embeddings is not None and reference.embeddings is not None
    assert half.embeddings.dtype == np.float16
    assert np.abs(half.embeddings.astype(np.float32) - reference.embeddings).max() < 1e-3
    objects = half.predictions["yolov8_detection"].box_embeddings
    assert objects is not None and objects.dtype == np.float16
    norms = np.linalg.norm(half.embeddings.astype(np.float32), axis=1)
    assert np.abs(norms - 1).max() < 2e-3
    config = SelectionConfig.model_validate({"n_samples": 40, **FLEET_SELECTION})
    shared = {p.file_name for p in select(half, config).picks} & {p.file_name for p in select(reference, config).picks}
    assert len(shared) >= 30  # rounding moves a few picks, not the selection


def test_object_embeddings_are_read_only_when_asked(store: Storage) -> None:
    handles = latest_results(store)
    without = from_results(handles, "yolov8_detection", 0.25, objects=False)
    assert without.predictions["yolov8_detection"].box_embeddings is None
    scores_only = from_results(handles, "yolov8_detection", 0.25, embeddings=False, objects=False)
    assert scores_only.embeddings is not None and scores_only.embeddings.shape == (3000, 0)
    object_diversity = {"input": {"type": "EMBEDDINGS", "task": "yolov8_detection"}, "strategy": {"type": "DIVERSITY"}}
    assert SelectionConfig.model_validate({"n_samples": 3, "strategies": [object_diversity]}).uses_object_embeddings
    assert not SelectionConfig.model_validate({"n_samples": 3, **FLEET_SELECTION}).uses_object_embeddings


def test_inconsistent_results_are_named_not_loaded(store: Storage) -> None:
    three = [h.load() for h in latest_results(store)[:3]]
    three[1].det_frame = three[1].det_frame.copy()
    three[1].det_frame[0] = 10_000
    with pytest.raises(SourceError, match=rf"results of {three[1].video}: a box on frame 10000"):
        from_results(three, "yolov8_detection", 0.25)
    three = [h.load() for h in latest_results(store)[:3]]
    three[2].embeddings = three[2].embeddings[:, :8]
    with pytest.raises(SourceError, match="8-d embeddings, the other videos' 24-d"):
        from_results(three, "yolov8_detection", 0.25)
    handle = latest_results(store)[0]
    lying = results_mod.StoredResults(handle.storage, handle.key, {**handle.manifest, "inferredFrames": 3})
    with pytest.raises(SourceError, match="frame rows, its manifest says 3: infer the video again"):
        from_results([lying], "yolov8_detection", 0.25)


def test_duplicate_keys_decode_framesift_hashes_and_hash_anything_else() -> None:
    hexes = np.array(["00" * 15 + "ab", "ff" * 16, "00" * 15 + "ab"], dtype=object)
    keys = duplicate_keys(hexes)
    assert keys.dtype == np.dtype("S16") and keys[0] == keys[2] != keys[1]
    assert keys[1] == bytes.fromhex("ff" * 16)
    other = duplicate_keys(np.array(["a", "b", "a", "zz" * 16], dtype=object))
    assert other.dtype == np.dtype("S16") and other[0] == other[2] and len(set(other.tolist())) == 3


def test_prefetch_map_keeps_order_and_bounds_what_is_in_flight() -> None:
    lock, running, most = threading.Lock(), [0], [0]

    def slow(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.002 * (i % 3))
        with lock:
            running[0] -= 1
        return i * i

    started: list[int] = []

    def items() -> Any:
        for i in range(200):
            started.append(i)
            yield i

    out = []
    for value in prefetch_map(slow, items(), workers=4):
        out.append(value)
        assert len(started) <= len(out) + 8  # at most 2 × workers ahead of the consumer
    assert out == [i * i for i in range(200)] and most[0] <= 4
