"""Label Studio import tasks: one per frame, predictions as rectanglelabels pre-annotations
(percent coordinates of the image), and the labelling config that matches them."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

from framesift.jobs.formats.detections import FrameRecord

FROM_NAME = "label"
TO_NAME = "image"


def task(frame: FrameRecord, categories: dict[int, str], model_version: str) -> dict[str, Any]:
    results = []
    for i, box in enumerate(frame.boxes):
        x, y, w, h = box.xywh
        results.append(
            {
                "id": f"{i}",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "rectanglelabels",
                "original_width": frame.width,
                "original_height": frame.height,
                "image_rotation": 0,
                "score": round(box.score, 6),
                "value": {
                    "x": round(100.0 * x / frame.width, 4),
                    "y": round(100.0 * y / frame.height, 4),
                    "width": round(100.0 * w / frame.width, 4),
                    "height": round(100.0 * h / frame.height, 4),
                    "rotation": 0,
                    "rectanglelabels": [categories[box.category_id]],
                },
            }
        )
    frame_score = min((b.score for b in frame.boxes), default=0.0)
    return {
        "data": {
            "image": frame.read_url,
            "fileName": frame.file_name,
            "video": frame.video,
            "frameIndex": frame.frame_index,
        },
        "predictions": [{"model_version": model_version, "score": round(frame_score, 6), "result": results}],
    }


def tasks(frames: list[FrameRecord], categories: dict[int, str], model_version: str) -> list[dict[str, Any]]:
    return [task(f, categories, model_version) for f in frames]


def labeling_config(categories: dict[int, str]) -> str:
    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for _, name in sorted(categories.items()))
    return (
        f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
        f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}\n  </RectangleLabels>\n</View>\n'
    )
