"""What the selection engine reads: one row per frame, in (video path, frame index) order.

Built from framesift's own results (the pipeline) or from a LightlyOne `.lightly/` layout plus
an embeddings CSV (people who bring their own predictions). The engine itself does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from framesift.jobs.selection.scores import (
    SCORE_NAMES,
    all_scores,
    object_frequency,
    objectness_least_confidence,
    uncertainty_scores,
)
from framesift.jobs.video import frame_name

_FRAME_NAME = re.compile(r"^(?P<stem>.*)-(?P<index>\d+)-(?P<ext>[^-/]*)\.(?P<fmt>[A-Za-z0-9]+)$")


def parse_frame_name(name: str) -> tuple[str, int] | None:
    """`dir/clip-007-avi.png` → (`dir/clip.avi`, 7); None for a name of another shape."""
    match = _FRAME_NAME.match(name)
    if not match:
        return None
    ext = match["ext"]
    video = f"{match['stem']}.{ext}" if ext else match["stem"]
    return video, int(match["index"])


@dataclass
class TaskPredictions:
    """One prediction task's boxes, flat: box b belongs to frame `box_frame[b]`."""

    categories: dict[int, str]  # category id → name
    box_frame: np.ndarray  # (B,) int64, row in SelectionData
    box_class: np.ndarray  # (B,) int64, category id
    box_score: np.ndarray  # (B,) float64
    box_probs: np.ndarray | None  # (B, K) float64, or float32 as stored; categories in id order; NaN rows: none given
    box_embeddings: np.ndarray | None = None  # (B, D) float32, unit length: object embeddings
    box_xywh: np.ndarray | None = None  # (B, 4) pixels, when known (the report outlines novel objects)

    @property
    def category_ids(self) -> list[int]:
        return sorted(self.categories)

    def class_index(self) -> np.ndarray:
        """Each box's position in category id order (vectorised: ten million frames carry tens
        of millions of boxes)."""
        ids = np.asarray(self.category_ids, np.int64)
        classes = np.asarray(self.box_class, np.int64)
        position = np.searchsorted(ids, classes)
        unknown = (position >= len(ids)) | (ids[np.minimum(position, max(len(ids) - 1, 0))] != classes)
        if len(classes) and (not len(ids) or unknown.any()):
            raise KeyError(f"box class {int(classes[unknown][0])} is not among the categories {self.category_ids}")
        return position.astype(np.int64)

    def class_distribution(self, n_frames: int) -> np.ndarray:
        """(K, n) per-frame class vectors: sum over boxes of each probability vector, one-hot
        for boxes without probabilities."""
        k = len(self.categories)
        out = np.zeros((k, n_frames), np.float64)
        if not len(self.box_frame):
            return out
        idx = self.class_index()
        has = np.zeros(len(idx), bool) if self.box_probs is None else ~np.isnan(self.box_probs).any(axis=1)
        one_hot = ~has
        np.add.at(out, (idx[one_hot], self.box_frame[one_hot]), 1.0)
        if has.any() and self.box_probs is not None:
            for j in range(k):
                np.add.at(out[j], self.box_frame[has], self.box_probs[has, j])
        return out

    def category_count(self, n_frames: int, categories: list[str] | None) -> np.ndarray:
        mask = np.ones(len(self.box_class), bool)
        if categories:
            wanted = {cid for cid, name in self.categories.items() if name in set(categories)}
            mask = np.isin(self.box_class, list(wanted))
        return np.bincount(self.box_frame[mask], minlength=n_frames).astype(np.float64)

    def _score_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int]:
        return self.box_frame, self.class_index(), self.box_score, self.box_probs, len(self.categories)

    def scores(self, n_frames: int) -> dict[str, np.ndarray]:
        return all_scores(n_frames, *self._score_inputs())

    def score(self, n_frames: int, name: str) -> np.ndarray:
        """One of `scores`, computing only what that one needs: a WEIGHTS strategy over
        objectness should not pay for every box's probability vectors."""
        if name == "object_frequency":
            return object_frequency(n_frames, self.box_frame, self.class_index())
        if name == "objectness_least_confidence":
            return objectness_least_confidence(n_frames, self.box_frame, self.box_score)
        if name not in SCORE_NAMES:
            raise KeyError(f"unknown score {name!r}: one of {', '.join(SCORE_NAMES)}")
        return uncertainty_scores(n_frames, *self._score_inputs())[name]


@dataclass
class MetadataColumn:
    values: np.ndarray  # (n,) float64 or float32 when numeric (read as float64), object otherwise
    numeric: bool


class FrameNames(Sequence[str]):
    """Frame file names made from (video, frame index) when read, not held: ten million Python
    strings are about 0.8 GB, and selection reads only the picks' names. Rows are grouped by
    video with frame indexes ascending inside a video (the engine's row order)."""

    def __init__(
        self, videos: np.ndarray, frame_index: np.ndarray, frames_per_video: dict[str, int], extension: str = "png"
    ):
        self.videos = videos
        self.frame_index = frame_index
        self.frames_per_video = frames_per_video  # the zero padding of a video's frame numbers
        self.extension = extension
        self._spans: dict[str, tuple[int, int]] | None = None

    def __len__(self) -> int:
        return len(self.frame_index)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        video = str(self.videos[i])
        return frame_name(video, int(self.frame_index[i]), self.frames_per_video[video], self.extension)

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    def _video_spans(self) -> dict[str, tuple[int, int]]:
        """video → (first row, end row), from where the video column changes value."""
        if self._spans is None:
            n = len(self.videos)
            starts = np.flatnonzero(np.r_[True, self.videos[1:] != self.videos[:-1]]) if n else np.zeros(0, np.int64)
            ends = np.r_[starts[1:], n]
            self._spans = {str(self.videos[a]): (int(a), int(b)) for a, b in zip(starts, ends, strict=True)}
        return self._spans

    def rows_of(self, names: Iterable[str]) -> dict[str, int]:
        """The row of each of `names` that is a frame here (others are left out), found by
        parsing the name: no ten-million-entry dictionary."""
        spans = self._video_spans()
        out: dict[str, int] = {}
        for name in names:
            parsed = parse_frame_name(name)
            if parsed is None or parsed[0] not in spans:
                continue
            start, stop = spans[parsed[0]]
            row = start + int(np.searchsorted(self.frame_index[start:stop], parsed[1]))
            if row < stop and self[row] == name:  # same padding and extension too
                out[name] = row
        return out


@dataclass
class SelectionData:
    file_names: Sequence[str]  # a list, or FrameNames
    videos: np.ndarray  # (n,) object
    frame_index: np.ndarray  # (n,) int64
    embeddings: np.ndarray | None  # (n, d) float32, unit length
    corrupt: np.ndarray  # (n,) bool
    duplicate_key: np.ndarray | None = None  # (n,) object: identical decoded pixels share a key
    predictions: dict[str, TaskPredictions] = field(default_factory=dict)
    metadata: dict[str, MetadataColumn] = field(default_factory=dict)
    corrupt_reasons: dict[str, int] = field(default_factory=dict)
    # frames of earlier runs' videos, present only so those runs' picks (the datapool) count for
    # diversity and balance: never candidates, not counted as input
    context_only: np.ndarray | None = None  # (n,) bool

    def __len__(self) -> int:
        return len(self.file_names)

    def rows_of(self, names: Iterable[str]) -> dict[str, int]:
        """name → row for those of `names` that are frames here (a datapool, a query, picks)."""
        if isinstance(self.file_names, FrameNames):
            return self.file_names.rows_of(names)
        wanted = set(names)
        return {name: i for i, name in enumerate(self.file_names) if name in wanted}


# Embeddings above this many bytes at float32 are held as float16 (ten million frames × 448
# would be 18 GB at float32, 9 GB at float16); below it selection keeps float32 and its picks
# stay exactly those of earlier releases. docs/benchmarks.md has the measured bounds.
FLOAT32_LIMIT_BYTES = 4 << 30


def embedding_dtype(n: int, dim: int) -> type[np.floating]:
    return np.float32 if n * dim * 4 <= FLOAT32_LIMIT_BYTES else np.float16


def normalize_rows(embeddings: np.ndarray) -> np.ndarray:
    """Unit length, float32, in place where possible (a million rows: no second copy)."""
    emb = np.asarray(embeddings, dtype=np.float32)
    if not emb.flags.writeable:
        emb = emb.copy()
    for start in range(0, len(emb), 65536):  # np.linalg.norm would square a full-size copy
        block = emb[start : start + 65536]
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        norms[norms == 0] = 1.0
        block /= norms[:, None]
    return emb


def order_rows(videos: list[str], frame_index: list[int]) -> np.ndarray:
    """The permutation that sorts rows by (video path, frame index): ties go to the earliest."""
    return np.lexsort((np.asarray(frame_index), np.asarray(videos, dtype=object).astype(str)))
