"""How the inference Job's indexes cover the run's videos: index i infers a contiguous chunk.

One definition for the operator (the Job's completions) and the pods (which videos index i
means). A chunk of short clips shares one model load; the Job stays at ≤ MAX_INDEXES indexes.
"""

from __future__ import annotations

import math

MAX_INDEXES = 10_000  # an Indexed Job's completions stay at most this
MAX_FAILED_VIDEOS_IN_STATUS = 20  # named in a run's status; the rest are counted (runs/<run>/failed-videos.json)


def videos_per_index(explicit: int | None, n_videos: int) -> int:
    """`resources.infer.videosPerPod`, else 1 video per index up to MAX_INDEXES videos, and
    enough per index beyond that to stay at MAX_INDEXES indexes."""
    if explicit:
        return explicit
    return max(1, math.ceil(n_videos / MAX_INDEXES))


def index_count(n_videos: int, per_index: int) -> int:
    return math.ceil(n_videos / per_index) if n_videos else 0


def videos_of_index(index: int, per_index: int, n_videos: int) -> range:
    return range(index * per_index, min(n_videos, (index + 1) * per_index))


def videos_in(ranges: tuple[tuple[int, int], ...], per_index: int, n_videos: int) -> int:
    """How many videos the index ranges (inclusive, as Kubernetes writes them) cover."""
    return sum(max(0, min(n_videos, (hi + 1) * per_index) - lo * per_index) for lo, hi in ranges)
