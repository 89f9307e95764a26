"""LightlyOne's `selection_config`, verbatim (snake_case keys), as pydantic models.

The same document works for framesift's builtin engine and for a LightlyOne Worker, so the
keys, input types and strategy types are LightlyOne's own. Allowed input/strategy pairs follow
SELECTION.md §2; checks that need the data (is a METADATA key numeric or categorical, does a
BALANCE target name a class present) happen in the engine.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    # strict: `n_samples: true` is not 1 and `"4"` is not 4 (as `maxFailedVideos: "3"` is no count)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# ----- inputs -----------------------------------------------------------------------------


class EmbeddingsInput(_Strict):
    type: Literal["EMBEDDINGS"]
    # With a task: object embeddings, one per detected object of that task ("images with
    # diverse objects"); without: one embedding per frame.
    task: str | None = Field(default=None, min_length=1)
    dataset_id: str | None = None
    tag_name: str | None = None
    # framesift extension: frame names (or URIs ending in a frame name) to be similar to.
    query: list[str] | None = None


class ScoresInput(_Strict):
    type: Literal["SCORES"]
    task: str = Field(min_length=1)
    score: str = Field(min_length=1)


class PredictionsInput(_Strict):
    type: Literal["PREDICTIONS"]
    task: str = Field(min_length=1)
    name: Literal["CLASS_DISTRIBUTION", "CATEGORY_COUNT"]
    categories: list[str] | None = None


class MetadataInput(_Strict):
    type: Literal["METADATA"]
    key: str = Field(min_length=1)


class RandomInput(_Strict):
    type: Literal["RANDOM"]
    random_seed: int = 0


SelectionInput = Annotated[
    EmbeddingsInput | ScoresInput | PredictionsInput | MetadataInput | RandomInput,
    Field(discriminator="type"),
]


# ----- strategies ---------------------------------------------------------------------------


class DiversityStrategy(_Strict):
    type: Literal["DIVERSITY"]
    strength: float = 1.0
    stopping_condition_minimum_distance: float | None = Field(default=None, ge=0)
    # framesift's opt-ins (not LightlyOne's): a config without them keeps LightlyOne's meaning
    framesift_exclude_near_duplicates: bool = Field(
        default=False,
        description="never pick a frame nearer (frame embeddings) to a pick or a datapool frame than "
        "1.5 × the mean distance between consecutive frames of a video",
    )
    framesift_object_score: Literal["max", "mean"] = Field(
        default="max",
        description="object-level DIVERSITY: a frame scores by its newest object (max) or by how new its "
        "objects are on average (mean: a crowd with one new face does not beat a frame of new objects)",
    )


# framesift's opt-in keys (DiversityStrategy) and their defaults: LightlyOne knows none of them
FRAMESIFT_OPT_IN_DEFAULTS: dict[str, Any] = {
    "framesift_exclude_near_duplicates": False,
    "framesift_object_score": "max",
}


# framesift's recommended strategies (docs/selection.md; examples/recommended_selection_config.json
# holds the same, a test keeps them equal): the report names a run that uses them
RECOMMENDED_STRATEGIES: list[dict[str, Any]] = [
    {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", "framesift_exclude_near_duplicates": True}},
    {"input": {"type": "METADATA", "key": "video_name"}, "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}},
]


class SimilarityStrategy(_Strict):
    type: Literal["SIMILARITY"]
    strength: float = 1.0


class TypicalityStrategy(_Strict):
    type: Literal["TYPICALITY"]
    strength: float = 1.0
    num_nearest_neighbors: int = Field(default=20, ge=2)
    stopping_condition_minimum_typicality: float | None = Field(default=None, ge=0)


class WeightsStrategy(_Strict):
    type: Literal["WEIGHTS"]
    strength: float = 1.0
    stopping_condition_max_sum: float | None = None


class ThresholdStrategy(_Strict):
    type: Literal["THRESHOLD"]
    threshold: float
    operation: Literal["BIGGER", "BIGGER_EQUAL", "SMALLER", "SMALLER_EQUAL"]


class BalanceStrategy(_Strict):
    type: Literal["BALANCE"]
    strength: float = 1.0
    target: dict[str, Annotated[float, Field(ge=0, le=1)]] | None = None
    distribution: Literal["TARGET", "UNIFORM", "INPUT"] | None = None

    @model_validator(mode="after")
    def _target_matches_distribution(self) -> BalanceStrategy:
        distribution = self.distribution or ("TARGET" if self.target is not None else None)
        if distribution is None:
            raise ValueError("give a `target` {class: fraction} or a `distribution` (UNIFORM or INPUT)")
        if distribution == "TARGET" and not self.target:
            raise ValueError("distribution TARGET needs a non-empty `target` {class: fraction}")
        if self.target is not None and sum(self.target.values()) > 1.0 + 1e-6:
            raise ValueError(f"`target` fractions sum to {sum(self.target.values()):.3f}; they must sum to ≤ 1")
        return self

    @property
    def effective_distribution(self) -> str:
        return self.distribution or "TARGET"


SelectionStrategy = Annotated[
    DiversityStrategy | SimilarityStrategy | TypicalityStrategy | WeightsStrategy | ThresholdStrategy | BalanceStrategy,
    Field(discriminator="type"),
]

ALLOWED_STRATEGIES: dict[str, frozenset[str]] = {
    "EMBEDDINGS": frozenset({"DIVERSITY", "SIMILARITY", "TYPICALITY"}),
    "SCORES": frozenset({"WEIGHTS", "THRESHOLD"}),
    "RANDOM": frozenset({"WEIGHTS", "THRESHOLD"}),
    "PREDICTIONS/CATEGORY_COUNT": frozenset({"WEIGHTS", "THRESHOLD"}),
    "PREDICTIONS/CLASS_DISTRIBUTION": frozenset({"BALANCE"}),
    # numeric METADATA takes WEIGHTS/THRESHOLD, categorical takes BALANCE: checked against the data
    "METADATA": frozenset({"WEIGHTS", "THRESHOLD", "BALANCE"}),
}


def input_kind(selection_input: BaseModel) -> str:
    """The key of ALLOWED_STRATEGIES for an input."""
    if isinstance(selection_input, PredictionsInput):
        return f"PREDICTIONS/{selection_input.name}"
    return selection_input.type  # type: ignore[attr-defined]


class StrategyEntry(_Strict):
    input: SelectionInput
    strategy: SelectionStrategy

    @model_validator(mode="after")
    def _allowed_pair(self) -> StrategyEntry:
        kind = input_kind(self.input)
        allowed = ALLOWED_STRATEGIES[kind]
        if self.strategy.type not in allowed:
            raise ValueError(
                f"strategy {self.strategy.type} cannot use input {kind}; "
                f"allowed with {kind}: {', '.join(sorted(allowed))}"
            )
        if (
            isinstance(self.input, EmbeddingsInput)
            and isinstance(self.strategy, SimilarityStrategy)
            and not (self.input.query or self.input.tag_name)
        ):
            raise ValueError("SIMILARITY needs the query frames: set input.query (frame names) or input.tag_name")
        return self


class SelectionConfig(_Strict):
    n_samples: int | None = Field(default=None, ge=1)
    proportion_samples: float | None = Field(default=None, gt=0, le=1)
    strategies: list[StrategyEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_size(self) -> SelectionConfig:
        if (self.n_samples is None) == (self.proportion_samples is None):
            raise ValueError("give exactly one of n_samples (a count ≥ 1) or proportion_samples (0 < p ≤ 1)")
        return self

    def target_count(self, candidates_passing_quality: int) -> int:
        if self.n_samples is not None:
            return self.n_samples
        assert self.proportion_samples is not None
        return max(1, round(self.proportion_samples * candidates_passing_quality))

    @property
    def uses_object_embeddings(self) -> bool:
        """Whether a strategy reads object embeddings (EMBEDDINGS with a task): the loader
        leaves them unread otherwise (tens of millions of boxes × 448 floats)."""
        return any(isinstance(e.input, EmbeddingsInput) and e.input.task for e in self.strategies)

    def lightly_document(self) -> dict[str, Any]:
        """The selection_config as its author wrote it (the keys they set, snake_case): what a
        LightlyOne Worker receives, verbatim."""
        document: dict[str, Any] = self.model_dump(mode="json", exclude_unset=True)
        for entry in document["strategies"]:  # framesift's opt-ins at their defaults mean nothing to LightlyOne
            defaults = FRAMESIFT_OPT_IN_DEFAULTS
            entry["strategy"] = {k: v for k, v in entry["strategy"].items() if not (k in defaults and defaults[k] == v)}
        return document

    def is_recommended(self) -> bool:
        """The strategies are framesift's recommended ones (any n_samples)."""
        return self.lightly_document()["strategies"] == [
            SelectionConfig.model_validate({"n_samples": 1, "strategies": [e]}).lightly_document()["strategies"][0]
            for e in RECOMMENDED_STRATEGIES
        ]

    def framesift_opt_ins(self) -> list[str]:
        """`strategies[i].strategy.<key>` of every framesift opt-in set to something other than its default."""
        out = []
        for i, entry in enumerate(self.strategies):
            for key, default in FRAMESIFT_OPT_IN_DEFAULTS.items():
                if getattr(entry.strategy, key, default) != default:
                    out.append(f"strategies[{i}].strategy.{key}")
        return out
