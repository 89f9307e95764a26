"""Per-frame quality: the `lightly.*` metadata keys and the corruptness check (SELECTION.md §5).

- uniformRowRatio: share of pixel rows whose luma barely varies, the grey or green stripes of
  broken decoding. "Barely" is tied to the frame's own texture: a row's standard deviation below
  a quarter of the frame's 90th-percentile row deviation, clamped to [1.5, 3.5] grey levels.
  Damaged MPEG-4 bands carry compression noise (row std 1.5–3): in a textured frame the
  tolerance is 3.5 and catches them; a dark or low-contrast scene, whose rows all vary little,
  gets a tolerance near 1.5 and is not mistaken for damage. Near-black rows that touch the top
  or bottom edge are letterbox bars, not damage, and do not count.
- sharpness: variance of the Laplacian of the luma.
- brightness: mean luma scaled to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

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


def uniform_row_ratio(gray: np.ndarray) -> float:
    rows = gray.astype(np.float32)
    std = rows.std(axis=1)
    tolerance = float(np.clip(UNIFORM_ROW_SHARE * np.percentile(std, 90), UNIFORM_ROW_STD_MIN, UNIFORM_ROW_STD_MAX))
    uniform = std < tolerance
    dark = rows.mean(axis=1) < LETTERBOX_MAX_LUMA
    bar = uniform & dark
    top, bottom = _edge_run(bar), _edge_run(bar[::-1])
    if top + bottom >= gray.shape[0]:  # a wholly black frame is not letterboxed: count it
        top = bottom = 0
    counted = uniform.copy()
    counted[:top] = False
    counted[gray.shape[0] - bottom :] = False
    return float(counted.sum()) / float(gray.shape[0])


def frame_quality(bgr: np.ndarray) -> FrameQuality:
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    # float32 holds a uint8 Laplacian exactly and is 6x faster than float64; meanStdDev sums in double
    _, std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    sharpness = float(std[0, 0]) ** 2
    brightness = float(gray.mean()) / 255.0
    return FrameQuality(uniform_row_ratio(gray), sharpness, brightness)
