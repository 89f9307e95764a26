"""Object-level diversity: EMBEDDINGS with a task (the tutorial's first strategy), verbatim."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from framesift.api.selection_config import SelectionConfig
from framesift.jobs.select import load_selection_config
from framesift.jobs.selection.data import SelectionData, TaskPredictions, normalize_rows
from framesift.jobs.selection.engine import SelectionConfigError, select
from framesift.jobs.selection.reference import naive_select

REPO = Path(__file__).resolve().parents[3]

# The tutorial's selection_config, exactly as the issue quotes it (a file, as people copy it).
TUTORIAL_FILE = REPO / "examples" / "tutorial_selection_config.json"
TUTORIAL = json.loads(TUTORIAL_FILE.read_text())
OBJECTS = {"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "DIVERSITY"}}
KINDS = {  # unit directions: objects of one kind are near each other, kinds far apart
    "A": np.array([1.0, 0.0, 0.0, 0.0]),
    "B": np.array([0.0, 1.0, 0.0, 0.0]),
    "C": np.array([0.0, 0.0, 1.0, 0.0]),
}


def scene(objects_per_frame: list[str], seed: int = 0) -> SelectionData:
    """One frame per string; each letter an object of that kind (with a little noise)."""
    rng = np.random.default_rng(seed)
    n = len(objects_per_frame)
    box_frame, box_class, embs = [], [], []
    for f, letters in enumerate(objects_per_frame):
        for letter in letters:
            box_frame.append(f)
            box_class.append("ABC".index(letter))
            embs.append(KINDS[letter] + rng.normal(0, 0.01, 4))
    preds = TaskPredictions(
        {0: "A", 1: "B", 2: "C"},
        np.array(box_frame, np.int64),
        np.array(box_class, np.int64),
        np.full(len(box_frame), 0.5),
        None,
        normalize_rows(np.array(embs, np.float32).reshape(-1, 4)),
        np.tile(np.array([[1.0, 2.0, 3.0, 4.0]], np.float32), (len(box_frame), 1)),
    )
    return SelectionData(
        file_names=[f"v-{i:03d}-mp4.png" for i in range(n)],
        videos=np.array(["v.mp4"] * n, dtype=object),
        frame_index=np.arange(n),
        embeddings=normalize_rows(np.ones((n, 4), np.float32)),  # identical frame embeddings
        corrupt=np.zeros(n, bool),
        duplicate_key=np.arange(n).astype(object),
        predictions={"det": preds},
    )


def cfg(n: int, *strategies: dict) -> SelectionConfig:
    return SelectionConfig.model_validate({"n_samples": n, "strategies": list(strategies)})


def test_the_tutorial_config_is_accepted_verbatim_and_pinned_in_the_example() -> None:
    assert TUTORIAL["strategies"][0]["input"] == {"type": "EMBEDDINGS", "task": "yolov8_detection"}
    config = load_selection_config(str(TUTORIAL_FILE))
    assert config.model_dump(mode="json", exclude_none=True, exclude_defaults=True) == TUTORIAL
    example = yaml.safe_load((REPO / "examples" / "pedestrians.yaml").read_text())
    assert example["spec"]["selection"] == TUTORIAL


def test_the_frame_holding_the_only_object_of_its_kind_is_picked_first() -> None:
    data = scene(["A", "AA", "A", "AB", "A", "A"])
    result = select(data, cfg(1, OBJECTS), datapool_names=["v-000-mp4.png"])  # an A frame is labelled already
    assert [p.index for p in result.picks] == [3]
    novel = result.picks[0].novel_objects["0:DIVERSITY:det/objects"]
    assert [o["category"] for o in novel] == ["B"] and novel[0]["bbox"] == [1.0, 2.0, 3.0, 4.0]


def test_two_frames_with_the_same_objects_are_not_both_picked_before_a_new_one() -> None:
    data = scene(["AB", "AB", "C", "AB"])
    picks = [p.index for p in select(data, cfg(2, OBJECTS)).picks]
    assert picks == [0, 2]


def test_a_frame_without_objects_scores_epsilon_and_comes_last() -> None:
    data = scene(["", "A", "", "B"])
    result = select(data, cfg(4, OBJECTS))
    assert [p.index for p in result.picks][:2] == [1, 3]
    assert result.picks[2].scores["0:DIVERSITY:det/objects"] == pytest.approx(1e-6)  # no objects: ε
    assert "novelObjects" not in result.to_json()["selected"][2]


def test_stopping_condition_on_object_distance() -> None:
    data = scene(["A", "A", "B", "A"])
    strategy = {**OBJECTS, "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": 0.5}}
    result = select(data, cfg(4, strategy))
    assert [p.index for p in result.picks] == [0, 2] and "minimum_distance" in result.stopped_because


def brute_force(data: SelectionData, n: int) -> list[int]:
    """Object diversity straight from its definition, in float64."""
    preds = data.predictions["det"]
    assert preds.box_embeddings is not None
    emb = preds.box_embeddings.astype(np.float64)
    picks: list[int] = []
    while len(picks) < n:
        chosen = emb[np.isin(preds.box_frame, picks)]
        best, best_d = -1, -1.0
        for f in range(len(data)):
            if f in picks:
                continue
            own = emb[preds.box_frame == f]
            if not len(own):
                d = 0.0
            elif not len(chosen):
                d = 2.0
            else:
                d = float(np.linalg.norm(own[:, None, :] - chosen[None, :, :], axis=2).min(axis=1).max())
            if d > best_d:
                best, best_d = f, d
        picks.append(best)
    return picks


def random_scene(seed: int, n: int = 60) -> SelectionData:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, n)
    box_frame = np.repeat(np.arange(n), counts)
    data = scene(["A"] * n, seed)
    preds = data.predictions["det"]
    preds.box_frame = box_frame
    preds.box_class = rng.integers(0, 3, len(box_frame))
    preds.box_score = rng.uniform(0.1, 1, len(box_frame))
    preds.box_embeddings = normalize_rows(rng.standard_normal((len(box_frame), 16)).astype(np.float32))
    preds.box_xywh = np.zeros((len(box_frame), 4), np.float32)
    return data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_engine_reference_and_definition_agree(seed: int) -> None:
    data = random_scene(seed)
    assert [p.index for p in select(data, cfg(15, OBJECTS)).picks] == brute_force(data, 15)
    mixed = cfg(
        20,
        OBJECTS,
        {
            "input": {"type": "PREDICTIONS", "task": "det", "name": "CLASS_DISTRIBUTION"},
            "strategy": {"type": "BALANCE", "target": {"A": 0.5, "B": 0.3}},
        },
        {
            "input": {"type": "SCORES", "task": "det", "score": "objectness_least_confidence"},
            "strategy": {"type": "WEIGHTS"},
        },
    )
    assert [p.index for p in select(data, mixed).picks] == naive_select(data, mixed)


def test_object_embeddings_with_other_strategies_or_without_data_are_refused() -> None:
    data = scene(["A", "B"])
    with pytest.raises(
        SelectionConfigError, match=r"strategies\[0\]\.input\.task: object embeddings .* DIVERSITY only"
    ):
        select(data, cfg(1, {"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "TYPICALITY"}}))
    data.predictions["det"].box_embeddings = None
    with pytest.raises(SelectionConfigError, match="needs object embeddings"):
        select(data, cfg(1, OBJECTS))
    with pytest.raises(SelectionConfigError, match="no predictions for task 'other'"):
        select(data, cfg(1, {"input": {"type": "EMBEDDINGS", "task": "other"}, "strategy": {"type": "DIVERSITY"}}))
