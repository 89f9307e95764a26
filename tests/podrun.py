"""What a kubelet does before it starts a container, for the two test kubelets (the kmock
harness and the real control plane's test node): the container's environment and its ConfigMap
volumes as files."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from kubernetes import client


def _secret(core: client.CoreV1Api, name: str, namespace: str) -> dict[str, str]:
    data = json.loads(core.read_namespaced_secret(name, namespace, _preload_content=False).data or b"{}")
    return {k: base64.b64decode(v).decode() for k, v in (data.get("data") or {}).items()}


def _field(meta: dict[str, Any], path: str) -> str:
    for kind in ("annotations", "labels"):
        start = f"metadata.{kind}['"
        if path.startswith(start):
            return str((meta.get(kind) or {}).get(path[len(start) : -2], ""))
    return str(meta.get(path.removeprefix("metadata."), ""))


def container_env(
    core: client.CoreV1Api, namespace: str, container: dict[str, Any], base: dict[str, str], pod_meta: dict[str, Any]
) -> dict[str, str]:
    """`base`, then envFrom Secrets, then env (values, secretKeyRef, fieldRef): env wins, as in Kubernetes."""
    env = dict(base)
    for source in container.get("envFrom", []):
        env.update(_secret(core, source["secretRef"]["name"], namespace))
    for item in container.get("env", []):
        source = item.get("valueFrom") or {}
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in source:
            env[item["name"]] = _secret(core, source["secretKeyRef"]["name"], namespace)[source["secretKeyRef"]["key"]]
        elif "fieldRef" in source:  # e.g. JOB_COMPLETION_INDEX from the index annotation
            env[item["name"]] = _field({**pod_meta, "namespace": namespace}, source["fieldRef"]["fieldPath"])
    return env


def write_configmaps(core: client.CoreV1Api, namespace: str, pod_spec: dict[str, Any], folder: Path) -> Path:
    """The pod's ConfigMap volumes' keys as files under folder/config (the mount the commands name)."""
    config = folder / "config"
    for volume in pod_spec.get("volumes", []):
        if "configMap" in volume:
            cm = json.loads(
                core.read_namespaced_config_map(volume["configMap"]["name"], namespace, _preload_content=False).data
            )
            config.mkdir(exist_ok=True)
            for key, value in (cm.get("data") or {}).items():
                (config / key).write_text(value)
    return config
