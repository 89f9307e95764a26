"""Per-frame quality: the `lightly.*` metadata keys and the corruptness check (SELECTION.md §5).

- uniformRowRatio: share of pixel rows whose luma barely varies, the grey or green stripes of
  broken decoding. "Barely" is tied to the frame's own texture: a row's standard deviation below
  a quarter of the frame's 90th-percentile row deviation, clamped to [1.5, 3.5] grey levels.
  Damaged MPEG-4 bands carry compression noise (row std 1.5–3): in a textured frame the
  tolerance is 3.5 and catches them; a dark or low-contrast scene, whose rows all vary little,
  gets a tolerance near 1.5 and is not mistaken for damage. Near-black rows that touch the top
  or bottom edge are letterbox bars, not damage, and do not count — as far as the neighbouring
  frames have the same bars: a letterbox belongs to the video (the same bars frame after frame),
  while a lost slice blacks out a band in one frame. In a video (`with_neighbours`) the part of a
  frame's edge bar deeper than its neighbours' (the shallower of the two) counts as damage.
- sharpness: variance of the Laplacian of the luma.
- brightness: mean luma scaled to [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

T = TypeVar("T")

UNIFORM_ROW_STD_MIN, UNIFORM_ROW_STD_MAX = 1.5, 3.5  # grey levels
UNIFORM_ROW_SHARE = 0.25  # of the frame's 90th-percentile row standard deviation
LETTERBOX_MAX_LUMA = 20.0


@dataclass(frozen=True)
class FrameQuality:
    uniform_row_ratio: float
    sharpness: float
    brightness: float


def _edge_run(mask: np.ndarray) -> int:
    """Length of the run of True at the start of mask."""
    false_at = np.flatnonzero(~mask)
    return int(false_at[0]) if false_at.size else int(mask.size)


@dataclass(frozen=True)
class RowStats:
    """A frame's uniform rows: those inside, and the near-black uniform bars at its edges."""

    inside: int  # uniform rows not part of an edge bar
    top: int
    bottom: int
    height: int

    def ratio(self, *neighbours: RowStats | None) -> float:
        """uniformRowRatio: the inside rows, plus the part of each edge bar deeper than the
        neighbours' (the shallower neighbour's bar is the video's letterbox). Without neighbours
        the whole bar is letterbox."""
        around = [n for n in neighbours if n is not None]
        extra = 0
        if around:
            extra += max(0, self.top - min(n.top for n in around))
            extra += max(0, self.bottom - min(n.bottom for n in around))
        return float(self.inside + extra) / float(self.height)


def row_stats(gray: np.ndarray) -> RowStats:
    rows = gray.astype(np.float32)
    std = rows.std(axis=1)
    tolerance = float(np.clip(UNIFORM_ROW_SHARE * np.percentile(std, 90), UNIFORM_ROW_STD_MIN, UNIFORM_ROW_STD_MAX))
    uniform = std < tolerance
    dark = rows.mean(axis=1) < LETTERBOX_MAX_LUMA
    bar = uniform & dark
    top, bottom = _edge_run(bar), _edge_run(bar[::-1])
    if top + bottom >= gray.shape[0]:  # a wholly black frame is not letterboxed: count it
        top = bottom = 0
    inside = int(uniform[top : gray.shape[0] - bottom].sum())
    return RowStats(inside, top, bottom, int(gray.shape[0]))


def uniform_row_ratio(gray: np.ndarray) -> float:
    """One frame on its own (no neighbours): edge bars count as letterbox."""
    return row_stats(gray).ratio()


def with_neighbours(frames: Iterable[tuple[T, RowStats]]) -> Iterator[tuple[T, float]]:
    """Each frame's uniformRowRatio with its neighbours in the stream (one frame of delay)."""
    previous: RowStats | None = None
    held: tuple[T, RowStats] | None = None
    for item, stats in frames:
        if held is not None:
            yield held[0], held[1].ratio(previous, stats)
            previous = held[1]
        held = (item, stats)
    if held is not None:
        yield held[0], held[1].ratio(previous)


def frame_measures(bgr: np.ndarray) -> tuple[RowStats, float, float]:
    """(row stats, sharpness, brightness) of one frame."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    # float32 holds a uint8 Laplacian exactly and is 6x faster than float64; meanStdDev sums in double
    _, std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    sharpness = float(std[0, 0]) ** 2
    brightness = float(gray.mean()) / 255.0
    return row_stats(gray), sharpness, brightness


def frame_quality(bgr: np.ndarray) -> FrameQuality:
    """One frame on its own (stills, tests); in a video use `frame_measures` and `with_neighbours`."""
    stats, sharpness, brightness = frame_measures(bgr)
    return FrameQuality(stats.ratio(), sharpness, brightness)
