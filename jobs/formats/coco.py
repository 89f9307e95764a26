"""COCO detection JSON: images, categories, and the predicted boxes (with score) as annotations.

COCO tools and many trainers reserve category id 0, so categories are numbered from 1 in the
order of framesift's (LightlyOne's, 0-based) ids; `info.category_mapping` maps each COCO id back
to framesift's id. (`.lightly/` keeps LightlyOne's own ids.)"""

from __future__ import annotations

from typing import Any

from framesift.jobs.formats.detections import FrameRecord


def coco_ids(categories: dict[int, str]) -> dict[int, int]:
    """framesift category id → COCO category id (1, 2, ... in id order)."""
    return {cid: n for n, cid in enumerate(sorted(categories), start=1)}


def coco(frames: list[FrameRecord], categories: dict[int, str], description: str) -> dict[str, Any]:
    to_coco = coco_ids(categories)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, frame in enumerate(frames, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": frame.file_name,
                "width": frame.width,
                "height": frame.height,
                "coco_url": frame.read_url,
                "video": frame.video,
                "frame_index": frame.frame_index,
            }
        )
        for box in frame.boxes:
            x, y, w, h = box.xywh
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": to_coco[box.category_id],
                    "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                    "score": round(box.score, 6),
                }
            )
    return {
        "info": {
            "description": description,
            "version": "1.0",
            "category_mapping": {str(coco_id): cid for cid, coco_id in to_coco.items()},
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": to_coco[cid], "name": name, "supercategory": "object"} for cid, name in sorted(categories.items())
        ],
    }
