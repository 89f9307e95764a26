"""Test helpers: manifests and synthetic videos made on the spot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from framesift.jobs.synthetic_video import synthetic_video

__all__ = ["free_port", "helm", "manifest", "synthetic_video", "write_manifest"]


def manifest(name: str, input_uri: str, output_uri: str, **spec: Any) -> dict[str, Any]:
    model = {"weights": "yolov8n.yaml", "imgsz": 160, "batch": 16, "conf": 0.0001, "classes": {"person": 0, "car": 2}}
    model.update(spec.pop("model", {}))
    doc: dict[str, Any] = {
        "apiVersion": "framesift.dev/v1alpha1",
        "kind": "ActiveLearningRun",
        "metadata": {"name": name},
        "spec": {"input": {"uri": input_uri}, "output": {"uri": output_uri}, "model": model},
    }
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(doc["spec"].get(key), dict):
            doc["spec"][key].update(value)
        else:
            doc["spec"][key] = value
    return doc


def write_manifest(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def helm() -> str:
    """The helm binary: $FRAMESIFT_HELM, one on PATH, or the one scripts/get-helm.sh fetched."""
    import os
    import shutil

    import pytest

    repo = Path(__file__).resolve().parents[1]
    found = os.environ.get("FRAMESIFT_HELM") or shutil.which("helm") or str(repo / ".cache" / "tools" / "helm")
    if not Path(found).exists():
        pytest.fail("helm is missing: bash scripts/get-helm.sh (scripts/test.sh runs it)")
    return found


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a server a test starts."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
