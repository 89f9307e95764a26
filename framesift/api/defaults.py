"""Platform defaults under a run's spec: what a platform team sets once for every run (GPU node
selectors and tolerations, a Kueue queue, resource requests), each run free to override."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from framesift.api.manifest import safe_load


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` wins; mappings merge key by key, everything else is replaced whole."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_defaults(document: dict[str, Any], defaults: dict[str, Any] | None) -> dict[str, Any]:
    """The run document with `defaults` (a partial spec) under its spec."""
    if not defaults:
        return document
    merged = dict(document)
    merged["spec"] = deep_merge(defaults, document.get("spec") or {})
    return merged


def load_defaults(path: str | Path | None) -> dict[str, Any] | None:
    if not path:
        return None
    data = safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: run defaults must be a mapping (a partial ActiveLearningRun spec)")
    return data
