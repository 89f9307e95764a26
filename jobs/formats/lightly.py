"""The LightlyOne file layout in the output bucket (SELECTION.md §1): builders, checks, readers.

Every file framesift writes here goes through a `check_*` function first, so a format error is
caught at the writer, not by the LightlyOne Worker hours later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from framesift.api.models import METADATA_VALUE_TYPES

TASKS_KEY = ".lightly/predictions/tasks.json"
METADATA_SCHEMA_KEY = ".lightly/metadata/schema.json"


class FormatError(ValueError):
    """A LightlyOne file that does not follow the format."""


def task_schema_key(task: str) -> str:
    return f".lightly/predictions/{task}/schema.json"


def prediction_folder(task: str) -> str:
    return f".lightly/predictions/{task}"


def prediction_key(task: str, frame_stem: str) -> str:
    return f"{prediction_folder(task)}/{frame_stem}.json"


def metadata_key(video_key: str) -> str:
    return f".lightly/metadata/{video_key.rpartition('.')[0] or video_key}.json"


# ----- builders (pure) ------------------------------------------------------------------------


def prediction_schema(categories: dict[int, str]) -> dict[str, Any]:
    schema = {
        "task_type": "object-detection",
        "categories": [{"id": int(i), "name": categories[i]} for i in sorted(categories)],
    }
    check_prediction_schema(schema)
    return schema


def box_prediction(
    category_id: int, xywh: Iterable[float], score: float, probabilities: Iterable[float] | None = None
) -> dict[str, Any]:
    x, y, w, h = (float(v) for v in xywh)
    pred: dict[str, Any] = {
        "category_id": int(category_id),
        "bbox": [round(x, 2), round(y, 2), round(max(w, 1.0), 2), round(max(h, 1.0), 2)],
        "score": round(min(max(float(score), 0.0), 1.0), 6),
    }
    if probabilities is not None:
        probs = [float(p) for p in probabilities]
        total = sum(probs)
        pred["probabilities"] = [round(p / total, 6) for p in probs] if total > 0 else probs
    return pred


def prediction_file(file_name: str, predictions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"file_name": file_name, "predictions": predictions}


def metadata_schema(fields: list[tuple[str, str, Any]]) -> list[dict[str, Any]]:
    """fields: (name/path, valueDataType, defaultValue)."""
    schema = [
        {"name": name, "path": name, "defaultValue": default, "valueDataType": value_type}
        for name, value_type, default in fields
    ]
    check_metadata_schema(schema)
    return schema


def metadata_file(video_key: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"file_name": video_key, "type": "video", "metadata": metadata}


# ----- checks -----------------------------------------------------------------------------


def check_prediction_schema(schema: Any) -> None:
    if not isinstance(schema, dict) or schema.get("task_type") != "object-detection":
        raise FormatError("prediction schema: task_type must be 'object-detection'")
    cats = schema.get("categories")
    if not isinstance(cats, list) or not cats:
        raise FormatError("prediction schema: categories must be a non-empty list")
    ids = []
    for cat in cats:
        if not isinstance(cat, dict) or set(cat) != {"id", "name"}:
            raise FormatError(f"prediction schema: category {cat!r} must be {{id, name}}")
        if not isinstance(cat["id"], int) or cat["id"] < 0 or not isinstance(cat["name"], str) or not cat["name"]:
            raise FormatError(f"prediction schema: category {cat!r} needs an id ≥ 0 and a name")
        ids.append(cat["id"])
    if len(set(ids)) != len(ids):
        raise FormatError("prediction schema: category ids must be unique")


def check_prediction_file(
    pred: Any, category_ids: set[int], width: int | None = None, height: int | None = None
) -> None:
    if not isinstance(pred, dict) or set(pred) != {"file_name", "predictions"}:
        raise FormatError("prediction file must be {file_name, predictions}")
    name = pred["file_name"]
    if not isinstance(name, str) or not name:
        raise FormatError("prediction file: file_name must be a non-empty string")
    if not isinstance(pred["predictions"], list):
        raise FormatError(f"{name}: predictions must be a list")
    for p in pred["predictions"]:
        if not isinstance(p, dict) or not {"category_id", "bbox", "score"} <= set(p):
            raise FormatError(f"{name}: each prediction needs category_id, bbox, score")
        if p["category_id"] not in category_ids:
            raise FormatError(f"{name}: category_id {p['category_id']} is not in the task's schema")
        bbox = p["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
            raise FormatError(f"{name}: bbox must be [x, y, w, h]")
        x, y, w, h = bbox
        if x < 0 or y < 0 or w < 1 or h < 1:
            raise FormatError(f"{name}: bbox {bbox} needs x, y ≥ 0 and w, h ≥ 1")
        if width is not None and height is not None and (x > width or y > height):
            raise FormatError(f"{name}: bbox {bbox} starts outside the {width}×{height} frame")
        if not 0 <= p["score"] <= 1:
            raise FormatError(f"{name}: score {p['score']} is not in [0, 1]")
        probs = p.get("probabilities")
        if probs is not None:
            if len(probs) != len(category_ids) or any(not 0 <= v <= 1 for v in probs):
                raise FormatError(f"{name}: probabilities need one value in [0, 1] per category")
            if not math.isclose(sum(probs), 1.0, abs_tol=1e-3):
                raise FormatError(f"{name}: probabilities sum to {sum(probs):.4f}, not 1")


def check_metadata_schema(schema: Any) -> None:
    if not isinstance(schema, list):
        raise FormatError("metadata schema must be a list")
    names = set()
    for entry in schema:
        if not isinstance(entry, dict) or set(entry) != {"name", "path", "defaultValue", "valueDataType"}:
            raise FormatError(f"metadata schema entry {entry!r} must be {{name, path, defaultValue, valueDataType}}")
        if entry["valueDataType"] not in METADATA_VALUE_TYPES:
            raise FormatError(f"metadata schema: {entry['name']}: unknown valueDataType {entry['valueDataType']}")
        if entry["path"].split(".")[0] == "lightly":
            raise FormatError("metadata schema: the top-level key 'lightly' is reserved")
        if entry["name"] in names:
            raise FormatError(f"metadata schema: {entry['name']} declared twice")
        names.add(entry["name"])


def check_metadata_file(meta: Any) -> None:
    if not isinstance(meta, dict) or set(meta) != {"file_name", "type", "metadata"}:
        raise FormatError("metadata file must be {file_name, type, metadata}")
    if meta["type"] != "video" or not isinstance(meta["metadata"], dict):
        raise FormatError(f"{meta.get('file_name')}: type must be 'video' and metadata a mapping")
    if "lightly" in meta["metadata"]:
        raise FormatError(f"{meta['file_name']}: the top-level key 'lightly' is reserved")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")
