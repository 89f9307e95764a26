"""The builtin selection engine: LightlyOne's selection_config semantics (SELECTION.md §2–3).

1. Candidates: frames that pass the corruptness check, minus every frame a THRESHOLD
   strategy filters, minus exact duplicates (first occurrence kept) and datapool frames.
2. Greedy: pick the candidate with the largest Π_s g_s(x)^strength_s until n are chosen or a
   stopping condition holds; ties go to the earliest (video path, frame index).
Pure: no I/O; the data comes in as a SelectionData.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from framesift.api.errors import ManifestError
from framesift.api.selection_config import (
    BalanceStrategy,
    DiversityStrategy,
    EmbeddingsInput,
    MetadataInput,
    PredictionsInput,
    RandomInput,
    ScoresInput,
    SelectionConfig,
    SimilarityStrategy,
    StrategyEntry,
    ThresholdStrategy,
    TypicalityStrategy,
    WeightsStrategy,
)
from framesift.jobs.selection.data import SelectionData
from framesift.jobs.selection.scores import SCORE_NAMES
from framesift.jobs.selection.strategies import (
    EPS,
    NEAR_DUPLICATE_FACTOR,
    Balance,
    BalanceLoss,
    CategoryBalance,
    Diversity,
    NearDuplicates,
    ObjectDiversity,
    balance_matrix,
    category_balance_rows,
    consecutive_distance,
    minmax_unit,
    similarity,
    typicality,
    weights_scores,
)

OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "BIGGER": operator.gt,
    "BIGGER_EQUAL": operator.ge,
    "SMALLER": operator.lt,
    "SMALLER_EQUAL": operator.le,
}


class SelectionConfigError(ManifestError):
    """A selection_config that does not fit the data (unknown task, key, class...)."""


@dataclass
class Pick:
    index: int
    file_name: str
    video: str
    frame_index: int
    scores: dict[str, float]
    # object-level strategies: the boxes whose objects made the frame new, by strategy label
    novel_objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class SelectionResult:
    tag: str
    picks: list[Pick]
    stopped_because: str
    candidates: int
    requested: int
    filtered: dict[str, int] = field(default_factory=dict)
    datapool: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "selected": [
                {
                    "fileName": p.file_name,
                    "video": p.video,
                    "frameIndex": p.frame_index,
                    "scores": {k: round(v, 6) for k, v in p.scores.items()},
                    **({"novelObjects": p.novel_objects} if p.novel_objects else {}),
                }
                for p in self.picks
            ],
            "stoppedBecause": self.stopped_because,
            "candidates": self.candidates,
            "requested": self.requested,
            "filtered": self.filtered,
            "datapool": self.datapool,
        }


def strategy_label(i: int, entry: StrategyEntry) -> str:
    """The key of a strategy's score in the output: `<index>:<strategy>:<what it reads>`."""
    inp = entry.input
    what = {
        EmbeddingsInput: lambda: f"{inp.task}/objects" if inp.task else "embeddings",  # type: ignore[union-attr]
        ScoresInput: lambda: f"{inp.task}/{inp.score}",  # type: ignore[union-attr]
        PredictionsInput: lambda: f"{inp.task}/{inp.name}",  # type: ignore[union-attr]
        MetadataInput: lambda: f"metadata/{inp.key}",  # type: ignore[union-attr]
        RandomInput: lambda: f"random/{inp.random_seed}",  # type: ignore[union-attr]
    }[type(inp)]()
    rules = []  # framesift's opt-ins, named where each pick's scores are (selected.json, the report)
    if isinstance(entry.strategy, DiversityStrategy):
        if entry.strategy.framesift_exclude_near_duplicates:
            rules.append("no near-duplicates")
        if entry.strategy.framesift_object_score != "max":
            rules.append(f"objects by {entry.strategy.framesift_object_score}")
    kind = f"{entry.strategy.type}[{', '.join(rules)}]" if rules else entry.strategy.type
    return f"{i}:{kind}:{what}"


# ----- reading an input --------------------------------------------------------------------


def _error(i: int, field_path: str, message: str) -> SelectionConfigError:
    return SelectionConfigError("selection_config", [f"strategies[{i}].{field_path}: {message}"])


def did_you_mean(value: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(value, valid, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f" (available: {', '.join(sorted(valid)) or 'none'})"


def _task(data: SelectionData, i: int, task: str) -> Any:
    if task not in data.predictions:
        raise _error(i, "input.task", f"no predictions for task {task!r}{did_you_mean(task, list(data.predictions))}")
    return data.predictions[task]


def numeric_input(data: SelectionData, i: int, entry: StrategyEntry) -> np.ndarray:
    """The per-frame values a WEIGHTS or THRESHOLD strategy reads."""
    inp = entry.input
    n = len(data)
    if isinstance(inp, ScoresInput):
        preds = _task(data, i, inp.task)
        if inp.score not in SCORE_NAMES:
            raise _error(i, "input.score", f"unknown score {inp.score!r}{did_you_mean(inp.score, list(SCORE_NAMES))}")
        return np.asarray(preds.score(n, inp.score), np.float64)
    if isinstance(inp, RandomInput):
        return np.random.default_rng(inp.random_seed).random(n)
    if isinstance(inp, PredictionsInput):
        return _task(data, i, inp.task).category_count(n, inp.categories)
    if isinstance(inp, MetadataInput):
        column = _metadata(data, i, inp.key)
        if not column.numeric:
            raise _error(
                i,
                "input.key",
                f"{inp.key} is categorical; {entry.strategy.type} needs a numeric key (BALANCE takes categorical ones)",
            )
        return np.asarray(column.values, np.float64)
    raise _error(i, "input.type", f"{inp.type} gives no numbers")


def _metadata(data: SelectionData, i: int, key: str) -> Any:
    if key not in data.metadata:
        raise _error(i, "input.key", f"unknown metadata key {key!r}{did_you_mean(key, list(data.metadata))}")
    return data.metadata[key]


def metadata_categories(data: SelectionData, i: int, key: str) -> tuple[np.ndarray, list[str]]:
    """(n,) each frame's position in the sorted category names of a categorical metadata key, and
    those names."""
    column = _metadata(data, i, key)
    if column.numeric:
        raise _error(
            i,
            "input.key",
            f"{key} is numeric; BALANCE needs a categorical key (WEIGHTS or THRESHOLD take numeric ones)",
        )
    values = np.asarray([str(v) for v in column.values], dtype=object)
    unique, position = np.unique(values, return_inverse=True)  # sorted names, each row's
    return position.reshape(-1), [str(name) for name in unique]


def class_rows(data: SelectionData, i: int, entry: StrategyEntry) -> tuple[np.ndarray, list[str]]:
    """(K, n) class vectors and class names a BALANCE strategy reads (dense: the engine reads
    categorical metadata through `metadata_categories` instead)."""
    inp = entry.input
    if isinstance(inp, PredictionsInput):
        preds = _task(data, i, inp.task)
        names = [preds.categories[c] for c in preds.category_ids]
        return preds.class_distribution(len(data)), names
    if isinstance(inp, MetadataInput):
        position, names = metadata_categories(data, i, inp.key)
        rows = np.zeros((len(names), len(data)), np.float64)
        rows[position, np.arange(len(data))] = 1.0
        return rows, names
    raise _error(i, "input.type", "BALANCE reads PREDICTIONS/CLASS_DISTRIBUTION or categorical METADATA")


def _object_embeddings(data: SelectionData, i: int, task: str) -> tuple[Any, np.ndarray]:
    preds = _task(data, i, task)
    if preds.box_embeddings is None:
        raise _error(
            i,
            "input.task",
            f"EMBEDDINGS with task {task!r} needs object embeddings, and these predictions have none "
            "(results inferred before framesift stored them, or a LightlyOne layout with an embeddings CSV): "
            "rerun inference, or drop `task` for frame embeddings",
        )
    return preds, preds.box_embeddings


def _embeddings(data: SelectionData, i: int) -> np.ndarray:
    if data.embeddings is None:
        raise _error(i, "input.type", "EMBEDDINGS: the data has no embeddings")
    return data.embeddings


# ----- candidates --------------------------------------------------------------------------


def candidate_mask(
    data: SelectionData, config: SelectionConfig, datapool: np.ndarray
) -> tuple[np.ndarray, dict[str, int], int]:
    """(candidates, {reason: frames removed}, frames passing the corruptness check)."""
    filtered: dict[str, int] = {}
    context = data.context_only if data.context_only is not None else np.zeros(len(data), bool)
    alive = ~data.corrupt & ~context
    passing = int(alive.sum())
    filtered["corrupt"] = int((data.corrupt & ~context).sum())
    for i, entry in enumerate(config.strategies):
        if isinstance(entry.strategy, ThresholdStrategy):
            values = numeric_input(data, i, entry)
            keep = OPERATIONS[entry.strategy.operation](values, entry.strategy.threshold)
            filtered[f"threshold:{strategy_label(i, entry)}"] = int((alive & ~keep).sum())
            alive &= keep
    keys = data.duplicate_key
    if keys is None and data.embeddings is not None:
        keys = np.array([row.tobytes() for row in data.embeddings], dtype=object)
    if keys is not None:
        dup = _duplicates(np.asarray(keys), np.flatnonzero(alive), len(data))
        filtered["duplicate"] = int(dup.sum())
        alive &= ~dup
    if len(datapool):
        in_pool = np.zeros(len(data), bool)
        in_pool[datapool] = True
        filtered["datapool"] = int((alive & in_pool).sum())
        alive &= ~in_pool
    return alive, filtered, passing


def _duplicates(keys: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Rows whose key an earlier row of `rows` has: the first occurrence stays. np.unique sorts
    stably, so its first index is the first occurrence (no Python loop over ten million frames);
    keys that do not sort together (mixed types) take the loop."""
    dup = np.zeros(n, bool)
    try:
        _, first = np.unique(keys[rows], return_index=True)
    except TypeError:
        seen: set[Any] = set()
        for j in rows:
            dup[j] = keys[j] in seen
            seen.add(keys[j])
        return dup
    dup[rows] = True
    dup[rows[first]] = False
    return dup


# ----- the greedy loop ---------------------------------------------------------------------


class ActiveStrategy:
    """One strategy in the greedy loop (THRESHOLD strategies filter candidates instead).

    `scores` gives every frame its g(x) in (0, 1]; `picked` updates the state after a pick;
    `stop_reason` is checked before each pick, `reject_reason` on the best candidate.
    Constant strategies are folded into one product before the loop.
    """

    constant = False

    def __init__(self, label: str, strength: float):
        self.label = label
        self.strength = strength

    def scores(self, alive: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def picked(self, index: int) -> None:
        return None

    def stop_reason(self) -> str | None:
        return None

    def reject_reason(self, g_best: float) -> str | None:
        return None

    def explain(self, index: int) -> list[dict[str, Any]]:
        """What, beyond its score, made this strategy favour the frame (the report shows it)."""
        return []


class ConstantScores(ActiveStrategy):
    """WEIGHTS, TYPICALITY, SIMILARITY: scores computed once."""

    constant = True

    def __init__(
        self,
        label: str,
        strength: float,
        g: np.ndarray,
        raw: np.ndarray | None = None,
        max_sum: float | None = None,
        min_typicality: float | None = None,
    ):
        super().__init__(label, strength)
        self.g = g
        self.raw = raw
        self.max_sum = max_sum
        self.min_typicality = min_typicality
        self.sum = 0.0

    def scores(self, alive: np.ndarray) -> np.ndarray:
        return self.g

    def picked(self, index: int) -> None:
        if self.max_sum is not None and self.raw is not None:
            self.sum += float(self.raw[index])

    def stop_reason(self) -> str | None:
        if self.max_sum is not None and self.sum >= self.max_sum:
            return f"{self.label}: stopping_condition_max_sum {self.max_sum} reached ({self.sum:.4f})"
        return None

    def reject_reason(self, g_best: float) -> str | None:
        if self.min_typicality is not None and g_best < self.min_typicality:
            return (
                f"{self.label}: stopping_condition_minimum_typicality {self.min_typicality} reached "
                f"(best candidate's typicality {g_best:.4f})"
            )
        return None


class DiversityScores(ActiveStrategy):
    """DIVERSITY: distance to the nearest selected (or datapool) frame, updated per pick."""

    def __init__(self, label: str, strength: float, diversity: Diversity | ObjectDiversity, min_distance: float | None):
        super().__init__(label, strength)
        self.diversity = diversity
        self.min_distance = min_distance

    def scores(self, alive: np.ndarray) -> np.ndarray:
        return self.diversity.scores()

    def picked(self, index: int) -> None:
        self.diversity.picked(index)

    def stop_reason(self) -> str | None:
        if self.min_distance is not None:
            top = self.diversity.max_distance()
            if top < self.min_distance:
                return (
                    f"{self.label}: stopping_condition_minimum_distance {self.min_distance} reached "
                    f"(largest distance left {top:.4f})"
                )
        return None


class ObjectDiversityScores(DiversityScores):
    """DIVERSITY over object embeddings (EMBEDDINGS with a task): how new a frame's objects are."""

    def __init__(
        self,
        label: str,
        strength: float,
        diversity: ObjectDiversity,
        min_distance: float | None,
        boxes: np.ndarray,
        classes: list[str],
    ):
        super().__init__(label, strength, diversity, min_distance)
        self.objects = diversity
        self.boxes = boxes  # (B, 4) xywh of the task's boxes, for the report
        self.classes = classes  # class name per box

    def explain(self, index: int) -> list[dict[str, Any]]:
        """The objects that made the frame new (before it is marked picked)."""
        out = []
        for b in self.objects.novel_objects(index):
            obj: dict[str, Any] = {"category": self.classes[b], "distance": round(float(self.objects.d_obj_of(b)), 6)}
            if len(self.boxes):
                obj["bbox"] = [round(float(v), 2) for v in self.boxes[b]]
            out.append(obj)
        return out


class BalanceScores(ActiveStrategy):
    """BALANCE: distance of the class shares to the target, updated per pick."""

    def __init__(self, label: str, strength: float, balance: BalanceLoss):
        super().__init__(label, strength)
        self.balance = balance

    def scores(self, alive: np.ndarray) -> np.ndarray:
        return self.balance.scores(alive)

    def picked(self, index: int) -> None:
        self.balance.picked(index)


def _validate_balance(i: int, strategy: BalanceStrategy, names: list[str], mass: np.ndarray) -> None:
    """`mass`: each class's mass over the candidates."""
    if strategy.effective_distribution == "TARGET" and strategy.target:
        present = {n for n, m in zip(names, mass, strict=True) if m > 0}
        if not set(strategy.target) & present:
            raise _error(
                i,
                "strategy.target",
                f"names {sorted(strategy.target)}, none of which is present in the "
                f"input (present: {sorted(present) or 'none'})",
            )


def build_strategies(
    data: SelectionData, config: SelectionConfig, alive: np.ndarray, datapool: np.ndarray, query: list[str]
) -> list[ActiveStrategy]:
    active: list[ActiveStrategy] = []
    for i, entry in enumerate(config.strategies):
        s = entry.strategy
        label = strategy_label(i, entry)
        if isinstance(s, ThresholdStrategy):
            continue
        if isinstance(s, WeightsStrategy):
            raw = numeric_input(data, i, entry)
            g = weights_scores(raw, alive)
            active.append(ConstantScores(label, s.strength, g, raw=raw, max_sum=s.stopping_condition_max_sum))
        elif isinstance(s, DiversityStrategy) and isinstance(entry.input, EmbeddingsInput) and entry.input.task:
            preds, objects = _object_embeddings(data, i, entry.input.task)
            div_objects = ObjectDiversity(
                preds.box_frame, objects, len(data), ~alive, datapool, rule=s.framesift_object_score
            )
            classes = [preds.categories.get(int(c), str(c)) for c in preds.box_class]
            boxes = preds.box_xywh if preds.box_xywh is not None else np.zeros((0, 4))
            active.append(
                ObjectDiversityScores(
                    label, s.strength, div_objects, s.stopping_condition_minimum_distance, boxes, classes
                )
            )
        elif isinstance(entry.input, EmbeddingsInput) and entry.input.task:
            raise _error(
                i,
                "input.task",
                f"object embeddings (EMBEDDINGS with a task) work with DIVERSITY only; {s.type} over objects has "
                "no frame-level meaning in framesift: drop `task` to use frame embeddings",
            )
        elif isinstance(s, DiversityStrategy):
            emb = _embeddings(data, i)
            div = Diversity(emb, ~alive, emb[datapool])
            active.append(DiversityScores(label, s.strength, div, s.stopping_condition_minimum_distance))
        elif isinstance(s, TypicalityStrategy):
            typ = typicality(_embeddings(data, i), alive, s.num_nearest_neighbors)
            g = minmax_unit(typ, alive)
            active.append(ConstantScores(label, s.strength, g, min_typicality=s.stopping_condition_minimum_typicality))
        elif isinstance(s, SimilarityStrategy):
            emb = _embeddings(data, i)
            assert isinstance(entry.input, EmbeddingsInput)
            names = list(entry.input.query or []) + list(query)
            frames = [_frame_of(n) for n in names]
            row_of = data.rows_of(frames)
            rows = [row_of[n] for n in frames if n in row_of]
            if not rows:
                raise _error(i, "input.query", f"none of the query frames {names[:3]} is in the data")
            active.append(ConstantScores(label, s.strength, minmax_unit(similarity(emb, emb[rows]), alive)))
        elif isinstance(s, BalanceStrategy) and isinstance(entry.input, MetadataInput):
            position, names = metadata_categories(data, i, entry.input.key)
            _validate_balance(i, s, names, np.bincount(position[alive], minlength=len(names)))
            row, target, _ = category_balance_rows(position, names, s.target, s.effective_distribution, alive)
            pool_rows = row[datapool]
            start = np.bincount(pool_rows[pool_rows >= 0], minlength=len(target)).astype(np.float64)
            active.append(BalanceScores(label, s.strength, CategoryBalance(row, target, start)))
        elif isinstance(s, BalanceStrategy):
            c, names = class_rows(data, i, entry)
            _validate_balance(i, s, names, np.array([row.sum(where=alive) for row in c]))
            class_mass, target, _ = balance_matrix(c, names, s.target, s.effective_distribution, alive)
            start = class_mass[:, datapool].sum(axis=1) if len(datapool) else np.zeros(len(target))
            active.append(BalanceScores(label, s.strength, Balance(class_mass, target, start)))
    return active


def _frame_of(name: str) -> str:
    """A query may be a URI or path ending in a frame name: keep the part the data knows."""
    return name.split("://", 1)[-1].split("/", 1)[-1] if "://" in name else name


def _power(g: np.ndarray, strength: float) -> np.ndarray:
    return g if strength == 1.0 else np.power(g, strength)


def _greedy_step(
    constant: np.ndarray, active: list[ActiveStrategy], changing: list[ActiveStrategy], alive: np.ndarray
) -> tuple[int, dict[str, float]]:
    """The alive frame with the largest Π_s g_s^strength_s (the earliest on a tie), and each
    strategy's g there. A frame-level DIVERSITY (one) is evaluated lazily: only the frames that
    could still win are brought up to date with the latest picks (Diversity.best)."""
    lazy = [a for a in changing if isinstance(a, DiversityScores) and isinstance(a.diversity, Diversity)]
    lazy_one = lazy[0] if len(lazy) == 1 else None
    per = {a.label: a.scores(alive) for a in active if a is not lazy_one}
    total = constant.copy()
    for a in changing:
        if a is not lazy_one:
            total *= _power(per[a.label], a.strength)
    if lazy_one is None:
        total[~alive] = -np.inf
        best = int(np.argmax(total))
        return best, {label: float(g[best]) for label, g in per.items()}
    assert isinstance(lazy_one.diversity, Diversity)
    best, g_div = lazy_one.diversity.best(total, lazy_one.strength, alive)
    g_best = {label: float(g[best]) for label, g in per.items()}
    g_best[lazy_one.label] = g_div
    return best, {a.label: g_best[a.label] for a in active}  # in the strategies' order


def near_duplicates(data: SelectionData, config: SelectionConfig) -> NearDuplicates | None:
    """The exclusion a DIVERSITY strategy opts into (framesift_exclude_near_duplicates)."""
    opted = [
        i
        for i, e in enumerate(config.strategies)
        if isinstance(e.strategy, DiversityStrategy) and e.strategy.framesift_exclude_near_duplicates
    ]
    if not opted:
        return None
    emb = _embeddings(data, opted[0])
    threshold = NEAR_DUPLICATE_FACTOR * consecutive_distance(emb, data.videos)
    return NearDuplicates(emb, threshold) if threshold > 0 else None


def select(
    data: SelectionData,
    config: SelectionConfig,
    tag: str = "initial-tag",
    datapool_names: list[str] | None = None,
    query: list[str] | None = None,
) -> SelectionResult:
    datapool = np.array(sorted(set(data.rows_of(datapool_names or []).values())), np.int64)
    alive, filtered, passing = candidate_mask(data, config, datapool)
    n_target = config.target_count(passing)
    active = build_strategies(data, config, alive, datapool, query or [])
    n_candidates = int(alive.sum())

    constant = np.ones(len(data), np.float64)
    for a in active:
        if a.constant:
            constant *= _power(a.scores(alive), a.strength)
    changing = [a for a in active if not a.constant]
    near = near_duplicates(data, config)
    if near is not None:
        for row in datapool:
            near.exclude_near(int(row), alive)

    picks: list[Pick] = []
    stopped = f"n_samples reached ({n_target})"
    while len(picks) < n_target:
        if not alive.any():
            stopped = (
                f"all {n_candidates} candidates selected: asked for {n_target}, "
                f"only {n_candidates} frames are candidates"
            )
            break
        stop = next((reason for a in active if (reason := a.stop_reason())), None)
        if stop:
            stopped = stop
            break
        best, g_best = _greedy_step(constant, active, changing, alive)
        reject = next((reason for a in active if (reason := a.reject_reason(g_best[a.label]))), None)
        if reject:
            stopped = reject
            break
        novel = {a.label: objects for a in active if (objects := a.explain(best))}
        picks.append(
            Pick(
                best,
                data.file_names[best],
                str(data.videos[best]),
                int(data.frame_index[best]),
                g_best,
                novel,
            )
        )
        alive[best] = False
        if near is not None:
            near.exclude_near(best, alive)
        for a in active:
            a.picked(best)
    return SelectionResult(tag, picks, stopped, n_candidates, n_target, filtered, len(datapool))


__all__ = ["EPS", "SelectionConfigError", "SelectionResult", "select", "strategy_label"]
