"""The test kubelet against a real API server: one Node; it binds the pods Jobs make to itself,
runs each container's command as a local process (the pod's env, Secret and fieldRef env, its
ConfigMap files) and reports phase and exit code through the pods' status, so the real Job
controller decides what happened to an index (podFailurePolicy, backoffLimitPerIndex)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from framesift.api.vocabulary import TERMINATION_LOG_ENV
from framesift.operator.manifests import CONFIG_MOUNT
from tests.podrun import container_env, write_configmaps

FRAMESIFT = str(Path(sys.executable).parent / "framesift")
NODE = "framesift-test-node"


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Node:
    def __init__(self, api: client.ApiClient, workdir: Path, env: dict[str, str]):
        self.core = client.CoreV1Api(api)
        self.workdir, self.env = workdir, env
        self.started: set[str] = set()
        self.held: set[str] = set()  # Jobs whose pods are bound but not started until released
        self.logs: list[Path] = []
        self._stop = threading.Event()
        self._register()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _json(self, response: Any) -> Any:
        return json.loads(response.data or b"{}")

    def _register(self) -> None:
        capacity = {"cpu": "16", "memory": "64Gi", "pods": "110", "nvidia.com/gpu": "8"}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        }
        try:
            self.core.create_node(node, _preload_content=False)
        except ApiException as err:
            if err.status != 409:
                raise
        status = {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": _stamp()}
            ],
        }
        self.core.patch_node_status(NODE, {"status": status}, _preload_content=False)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for pod in self._json(self.core.list_pod_for_all_namespaces(_preload_content=False))["items"]:
                    self._consider(pod)
            except Exception as err:  # keep the node alive; print for the test log
                print(f"node: {err!r}", file=sys.stderr)
            self._stop.wait(0.3)

    def _consider(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        if meta.get("deletionTimestamp") or not any(r["kind"] == "Job" for r in meta.get("ownerReferences") or []):
            return  # only Job pods (the chart's operator Deployment runs outside, as its ServiceAccount)
        if not spec.get("nodeName"):
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": meta["name"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
            }
            self.core.create_namespaced_pod_binding(meta["name"], meta["namespace"], binding, _preload_content=False)
            return
        owner = next(r["name"] for r in meta["ownerReferences"] if r["kind"] == "Job")
        if owner in self.held:
            return
        if meta["uid"] not in self.started and (pod.get("status") or {}).get("phase", "Pending") == "Pending":
            self.started.add(meta["uid"])
            threading.Thread(target=self._run, args=(pod,), daemon=True).start()

    def _env(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        base = {**os.environ, **self.env}
        env = container_env(self.core, pod["metadata"]["namespace"], container, base, pod["metadata"])
        env["FRAMESIFT_CACHE"] = str(self.workdir / "cache")
        return env

    def _status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.core.patch_namespaced_pod_status(
            meta["name"], meta["namespace"], {"status": status}, _preload_content=False
        )

    def _run(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        container = pod["spec"]["containers"][0]
        folder = Path(tempfile.mkdtemp(prefix=f"{meta['name']}-", dir=self.workdir))
        write_configmaps(self.core, meta["namespace"], pod["spec"], folder)
        command = [
            FRAMESIFT if c == "framesift" else c.replace(CONFIG_MOUNT, str(folder / "config"))
            for c in container["command"]
        ]
        env = self._env(pod, container)
        termination = folder / "termination-log"
        env[TERMINATION_LOG_ENV] = str(termination)
        log = folder / "container.log"
        self.logs.append(log)
        now = _stamp()
        name = container["name"]
        self._status(
            pod,
            {
                "phase": "Running",
                "startTime": now,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                "containerStatuses": [
                    {"name": name, "ready": True, "restartCount": 0, "image": container["image"], "imageID": "",
                     "state": {"running": {"startedAt": now}}}
                ],
            },
        )  # fmt: skip
        with log.open("w") as out:
            code = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        message = termination.read_text() if termination.exists() else ""
        if not message and code != 0:
            message = log.read_text()[-2048:]
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "message": message[:4096],
            "startedAt": now,
            "finishedAt": _stamp(),
        }
        self._status(
            pod,
            {
                "phase": "Succeeded" if code == 0 else "Failed",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": _stamp()}],
                "containerStatuses": [
                    {"name": name, "ready": False, "restartCount": 0, "image": container["image"], "imageID": "",
                     "state": {"terminated": terminated}}
                ],
            },
        )  # fmt: skip
