from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framesift.api.selection_config import SelectionConfig
from framesift.jobs.selection.data import MetadataColumn, SelectionData, TaskPredictions, normalize_rows
from framesift.jobs.selection.engine import SelectionConfigError, select
from framesift.jobs.selection.reference import naive_select
from framesift.jobs.selection.synthetic import synthetic_data


def frames(
    n: int,
    videos: int = 1,
    dim: int = 8,
    seed: int = 0,
    classes: np.ndarray | None = None,
    scores: np.ndarray | None = None,
) -> SelectionData:
    rng = np.random.default_rng(seed)
    video = np.array([f"v{i % videos}.mp4" for i in range(n)], dtype=object)
    order = np.lexsort((np.arange(n), video.astype(str)))
    video = video[order]
    idx = np.zeros(n, np.int64)
    for v in set(video.tolist()):
        rows = np.flatnonzero(video == v)
        idx[rows] = np.arange(len(rows))
    names = [f"{v[:-4]}-{i:04d}-mp4.png" for v, i in zip(video, idx, strict=True)]
    cls = classes if classes is not None else rng.integers(0, 3, n)
    preds = TaskPredictions(
        {0: "A", 1: "B", 2: "C"},
        np.arange(n),
        cls.astype(np.int64),
        scores if scores is not None else rng.uniform(0.1, 1, n),
        None,
    )
    return SelectionData(
        file_names=names,
        videos=video,
        frame_index=idx,
        embeddings=normalize_rows(rng.standard_normal((n, dim)).astype(np.float32)),
        corrupt=np.zeros(n, bool),
        duplicate_key=np.arange(n).astype(object),
        predictions={"det": preds},
        metadata={
            "video_name": MetadataColumn(np.array([v[:-4] for v in video], dtype=object), False),
            "weight": MetadataColumn(rng.uniform(0, 10, n), True),
        },
    )


def cfg(n: int | None = None, *strategies: dict, proportion: float | None = None) -> SelectionConfig:
    doc: dict = {"strategies": list(strategies)}
    if n is not None:
        doc["n_samples"] = n
    if proportion is not None:
        doc["proportion_samples"] = proportion
    return SelectionConfig.model_validate(doc)


CLASS_BALANCE = {"input": {"type": "PREDICTIONS", "task": "det", "name": "CLASS_DISTRIBUTION"}}
DIVERSITY = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}


def class_counts(data: SelectionData, picks: list[int]) -> np.ndarray:
    return np.bincount(data.predictions["det"].box_class[picks], minlength=3)


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.05, 0.9), b=st.floats(0.05, 0.9), n=st.integers(5, 60))
def test_balance_reaches_a_feasible_target_within_one_frame_per_class(a: float, b: float, n: int) -> None:
    if a + b > 0.95:
        b = 0.95 - a
    target = {"A": a, "B": b, "C": 1 - a - b}
    data = frames(400, classes=np.repeat([0, 1, 2], [134, 133, 133]))
    result = select(data, cfg(n, {**CLASS_BALANCE, "strategy": {"type": "BALANCE", "target": target}}))
    counts = class_counts(data, [p.index for p in result.picks])
    wanted = np.array([target["A"], target["B"], target["C"]]) * n
    assert np.all(np.abs(counts - wanted) <= 1.0 + 1e-9), (counts, wanted)


def test_infeasible_target_gets_as_close_as_the_input_allows() -> None:
    data = frames(100, classes=np.array([2, 2] + [0] * 49 + [1] * 49))
    target = {"A": 0.25, "B": 0.25, "C": 0.5}
    picks = [
        p.index
        for p in select(data, cfg(10, {**CLASS_BALANCE, "strategy": {"type": "BALANCE", "target": target}})).picks
    ]
    counts = class_counts(data, picks)
    assert counts[2] == 2  # every C frame there is
    best = min(abs(a / 10 - 0.25) + abs((8 - a) / 10 - 0.25) + abs(0.2 - 0.5) for a in range(9))
    reached = abs(counts[0] / 10 - 0.25) + abs(counts[1] / 10 - 0.25) + abs(counts[2] / 10 - 0.5)
    assert reached == pytest.approx(best)


def test_unnamed_classes_pool_into_other() -> None:
    data = frames(300, classes=np.repeat([0, 1, 2], 100))
    picks = [
        p.index
        for p in select(data, cfg(20, {**CLASS_BALANCE, "strategy": {"type": "BALANCE", "target": {"A": 0.5}}})).picks
    ]
    counts = class_counts(data, picks)
    assert counts[0] == 10 and counts[1] + counts[2] == 10


def test_uniform_and_input_distributions() -> None:
    data = frames(300, classes=np.repeat([0, 1, 2], [200, 50, 50]))
    uniform = select(data, cfg(30, {**CLASS_BALANCE, "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}}))
    assert class_counts(data, [p.index for p in uniform.picks]).tolist() == [10, 10, 10]
    shares = select(data, cfg(30, {**CLASS_BALANCE, "strategy": {"type": "BALANCE", "distribution": "INPUT"}}))
    assert class_counts(data, [p.index for p in shares.picks]).tolist() == [20, 5, 5]


def coverage_radius(emb: np.ndarray, picks: list[int]) -> float:
    d = np.sqrt(np.maximum(2 - 2 * emb @ emb[picks].T, 0))
    return float(d.min(axis=1).max())


def test_diversity_covers_clusters_better_than_stride_and_random() -> None:
    data = synthetic_data(3000, dim=16, clusters=12, seed=3)
    assert data.embeddings is not None
    n = 24
    picks = [p.index for p in select(data, cfg(n, DIVERSITY)).picks]
    stride = list(range(0, 3000, 3000 // n))[:n]
    rand = np.random.default_rng(0).choice(3000, n, replace=False).tolist()
    ours = coverage_radius(data.embeddings, picks)
    assert ours <= coverage_radius(data.embeddings, stride)
    assert ours <= coverage_radius(data.embeddings, rand)


def test_diversity_stopping_condition_stops_early() -> None:
    data = synthetic_data(2000, dim=16, clusters=5, seed=1)
    strategy = {"type": "DIVERSITY", "stopping_condition_minimum_distance": 0.9}
    result = select(data, cfg(500, {"input": {"type": "EMBEDDINGS"}, "strategy": strategy}))
    assert 5 <= len(result.picks) < 500
    assert "stopping_condition_minimum_distance" in result.stopped_because


def test_weights_raise_the_mean_and_negative_strength_inverts() -> None:
    data = frames(500, seed=2)
    weight = data.metadata["weight"].values
    entry = {"input": {"type": "METADATA", "key": "weight"}, "strategy": {"type": "WEIGHTS"}}
    up = [p.index for p in select(data, cfg(50, DIVERSITY, entry)).picks]
    down_entry = {**entry, "strategy": {"type": "WEIGHTS", "strength": -1.0}}
    down = [p.index for p in select(data, cfg(50, DIVERSITY, down_entry)).picks]
    rand = np.random.default_rng(0).choice(500, 50, replace=False)
    assert weight[up].mean() > weight[rand].mean() > weight[down].mean()


@pytest.mark.parametrize("position", [0, 1, 2])
def test_threshold_filters_in_any_position(position: int) -> None:
    data = frames(200, seed=4)
    threshold = {
        "input": {"type": "METADATA", "key": "weight"},
        "strategy": {"type": "THRESHOLD", "threshold": 5.0, "operation": "BIGGER_EQUAL"},
    }
    strategies = [DIVERSITY, {**CLASS_BALANCE, "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}}]
    strategies.insert(position, threshold)
    result = select(data, cfg(1000, *strategies))
    weight = data.metadata["weight"].values
    assert len(result.picks) == int((weight >= 5).sum())
    assert all(weight[p.index] >= 5 for p in result.picks)
    assert "only" in result.stopped_because  # asked for more than the candidates
    assert next(v for k, v in result.filtered.items() if k.startswith("threshold")) == int((weight < 5).sum())


def test_proportion_samples_counts_frames_that_pass_quality() -> None:
    data = frames(100)
    data.corrupt[:20] = True
    result = select(data, cfg(None, DIVERSITY, proportion=0.25))
    assert len(result.picks) == 20 and all(p.index >= 20 for p in result.picks)
    assert result.filtered["corrupt"] == 20


def test_typicality_prefers_dense_frames_and_similarity_the_query() -> None:
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((1, 8)) + 0.05 * rng.standard_normal((80, 8))
    sparse = rng.standard_normal((20, 8)) * 3
    data = frames(100)
    data.embeddings = normalize_rows(np.vstack([dense, sparse]).astype(np.float32))
    typical = select(
        data, cfg(10, {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "TYPICALITY", "num_nearest_neighbors": 5}})
    )
    assert all(p.index < 80 for p in typical.picks)
    query = data.file_names[90]
    similar = select(
        data, cfg(1, {"input": {"type": "EMBEDDINGS", "query": [query]}, "strategy": {"type": "SIMILARITY"}})
    )
    assert similar.picks[0].index == 90


def test_random_is_reproducible_with_its_seed() -> None:
    data = frames(300)

    def run(seed: int) -> list[int]:
        entry = {"input": {"type": "RANDOM", "random_seed": seed}, "strategy": {"type": "WEIGHTS"}}
        return [p.index for p in select(data, cfg(20, entry)).picks]

    assert run(7) == run(7) != run(8)


def test_duplicates_corrupt_and_datapool_are_never_picked() -> None:
    data = frames(50)
    assert data.duplicate_key is not None
    data.duplicate_key[10] = data.duplicate_key[11] = "same"
    data.corrupt[3] = True
    pool = [data.file_names[0], data.file_names[1]]
    result = select(data, cfg(100, DIVERSITY), datapool_names=pool)
    picked = {p.index for p in result.picks}
    assert 11 not in picked and 3 not in picked and not picked & {0, 1}
    assert 10 in picked
    assert result.filtered == {"corrupt": 1, "duplicate": 1, "datapool": 2}
    assert result.candidates == 46 and len(result.picks) == 46


def test_datapool_counts_for_balance() -> None:
    data = frames(200, classes=np.repeat([0, 1], 100))
    pool = [data.file_names[i] for i in range(10)]  # ten class-A frames already labelled
    entry = {**CLASS_BALANCE, "strategy": {"type": "BALANCE", "target": {"A": 0.5, "B": 0.5}}}
    picks = [p.index for p in select(data, cfg(10, entry), datapool_names=pool).picks]
    assert class_counts(data, picks).tolist() == [0, 10, 0]


def test_ties_go_to_the_earliest_frame_and_runs_are_deterministic() -> None:
    data = frames(30)
    entry = {
        "input": {"type": "METADATA", "key": "video_name"},
        "strategy": {"type": "BALANCE", "distribution": "UNIFORM"},
    }
    first = select(data, cfg(3, entry))
    assert [p.index for p in first.picks] == [0, 1, 2]
    assert [p.index for p in select(data, cfg(3, entry)).picks] == [0, 1, 2]


def test_engine_matches_the_naive_reference() -> None:
    data = synthetic_data(3000, dim=32, clusters=8, seed=5)
    config = cfg(
        60,
        DIVERSITY,
        {
            "input": {"type": "PREDICTIONS", "task": "yolov8_detection", "name": "CLASS_DISTRIBUTION"},
            "strategy": {"type": "BALANCE", "target": {"person": 0.33, "bicycle": 0.34, "car": 0.33}},
        },
        {
            "input": {"type": "SCORES", "task": "yolov8_detection", "score": "object_frequency"},
            "strategy": {"type": "WEIGHTS"},
        },
        {
            "input": {"type": "SCORES", "task": "yolov8_detection", "score": "objectness_least_confidence"},
            "strategy": {"type": "WEIGHTS", "strength": 2.0},
        },
        {
            "input": {"type": "METADATA", "key": "video_name"},
            "strategy": {"type": "BALANCE", "target": {"passageway1-c0": 0.34, "terrace1-c0": 0.33}},
        },
    )
    assert [p.index for p in select(data, config).picks] == naive_select(data, config)


def test_config_errors_name_the_strategy_and_field() -> None:
    data = frames(20)
    with pytest.raises(SelectionConfigError, match=r"strategies\[1\]\.input\.task: .*did you mean 'det'"):
        select(
            data,
            cfg(
                5,
                DIVERSITY,
                {
                    **CLASS_BALANCE,
                    "input": {**CLASS_BALANCE["input"], "task": "dett"},
                    "strategy": {"type": "BALANCE", "distribution": "UNIFORM"},
                },
            ),
        )
    with pytest.raises(SelectionConfigError, match=r"strategies\[0\]\.strategy\.target: names \['X', 'Y'\]"):
        select(data, cfg(5, {**CLASS_BALANCE, "strategy": {"type": "BALANCE", "target": {"X": 0.5, "Y": 0.5}}}))
    with pytest.raises(SelectionConfigError, match=r"strategies\[0\]\.input\.key: video_name is categorical"):
        select(data, cfg(5, {"input": {"type": "METADATA", "key": "video_name"}, "strategy": {"type": "WEIGHTS"}}))
    with pytest.raises(SelectionConfigError, match=r"input\.score: unknown score 'objectnes'"):
        select(
            data,
            cfg(5, {"input": {"type": "SCORES", "task": "det", "score": "objectnes"}, "strategy": {"type": "WEIGHTS"}}),
        )
    with pytest.raises(SelectionConfigError, match=r"unknown metadata key 'wieght'; did you mean 'weight'"):
        select(data, cfg(5, {"input": {"type": "METADATA", "key": "wieght"}, "strategy": {"type": "WEIGHTS"}}))


def test_duplicate_pixel_hashes_keep_the_first_frame_among_candidates() -> None:
    data = frames(12)
    data.duplicate_key = np.array(["h0", "h1", "h1", "h3", "h0", "h5", "h6", "h6", "h6", "h9", "h10", "h11"], object)
    data.corrupt[1] = True  # the first "h1" is not a candidate: the second one is the first occurrence
    result = select(data, cfg(100, DIVERSITY))
    picked = {p.index for p in result.picks}
    assert picked == {0, 2, 3, 5, 6, 9, 10, 11}
    assert result.filtered["duplicate"] == 3


def test_frame_names_made_on_access_are_the_names_a_list_would_hold() -> None:
    """Synthetic fleets hold their frame names as FrameNames (no ten million strings): each name,
    slice, iteration and the datapool's name lookup are those of `frame_name` per frame."""
    from framesift.jobs.selection.data import FrameNames
    from framesift.jobs.video import frame_name

    data = synthetic_data(1001, dim=8)
    assert isinstance(data.file_names, FrameNames)
    per_video = {str(v): int((data.videos == v).sum()) for v in set(data.videos)}
    rows = zip(data.videos, data.frame_index, strict=True)
    expected = [frame_name(str(v), int(i), per_video[str(v)]) for v, i in rows]
    assert list(data.file_names) == expected
    assert data.file_names[333] == expected[333] and data.file_names[-1] == expected[-1]
    assert data.file_names[5:9] == expected[5:9]
    every = {name: row for row, name in enumerate(expected)}
    asked = [*expected[::97], expected[-1], "passageway1-c0-0007-avi.png", "nowhere-1-avi.png", "not a frame"]
    assert data.file_names.rows_of(asked) == {name: every[name] for name in asked if name in every}
    assert data.rows_of([expected[700]]) == {expected[700]: 700}
    wrong_padding = expected[700].replace("-", "-0", 1)
    assert wrong_padding not in every and data.rows_of([wrong_padding]) == {}
    diversity = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}
    config = SelectionConfig.model_validate({"n_samples": 3, "strategies": [diversity]})
    result = select(data, config, datapool_names=expected[:2])
    assert [p.file_name for p in result.picks] == [expected[p.index] for p in result.picks]
