"""The one detections type the export formats convert from: a frame and its predicted boxes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Box:
    category_id: int
    xywh: tuple[float, float, float, float]  # pixels from the top-left corner
    score: float


@dataclass
class FrameRecord:
    file_name: str  # the frame name, e.g. vtest-007-avi.png
    video: str
    frame_index: int
    width: int
    height: int
    read_url: str
    datasource_url: str
    boxes: list[Box] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)  # per strategy, at the pick
    # object-level diversity: the boxes whose objects made the frame new ({category, distance, bbox})
    novel_objects: list[dict[str, object]] = field(default_factory=list)
