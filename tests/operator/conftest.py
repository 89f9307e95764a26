from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

sys.path.insert(0, str(Path(__file__).parent))
from harness import ApiServer, Kubelet, Operator, wait_for
from helpers import free_port

GROUP, VERSION, PLURAL = "framesift.dev", "v1alpha1", "activelearningruns"


@dataclass
class Cluster:
    server: ApiServer
    kubelet: Kubelet
    operator: Operator
    workdir: Path

    @property
    def api(self) -> client.ApiClient:
        return self.server.api()

    def _json(self, response: Any) -> Any:
        return json.loads(response.data or b"{}")

    def create_secret(self, namespace: str, name: str, values: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }
        client.CoreV1Api(self.api).create_namespaced_secret(namespace, body, _preload_content=False)

    def apply_run(self, namespace: str, doc: dict[str, Any]) -> None:
        client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, doc, _preload_content=False
        )

    def run(self, namespace: str, name: str) -> dict[str, Any]:
        return self._json(
            client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
            )
        )

    def patch_run(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch, _preload_content=False
        )

    def delete_run(self, namespace: str, name: str) -> None:
        client.CustomObjectsApi(self.api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
        )

    def jobs(self, namespace: str) -> list[dict[str, Any]]:
        return self._json(client.BatchV1Api(self.api).list_namespaced_job(namespace, _preload_content=False))["items"]

    def configmaps(self, namespace: str) -> list[dict[str, Any]]:
        return self._json(client.CoreV1Api(self.api).list_namespaced_config_map(namespace, _preload_content=False))[
            "items"
        ]

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return self._json(client.CoreV1Api(self.api).list_namespaced_event(namespace, _preload_content=False))["items"]

    def wait_phase(self, namespace: str, name: str, phases: tuple[str, ...], timeout: float = 420) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            run = self.run(namespace, name)
            return run if (run.get("status") or {}).get("phase") in phases else None

        try:
            return wait_for(reached, timeout, f"run {name} to reach {phases}")
        except AssertionError:
            print(self.operator.log.read_text()[-5000:], file=sys.stderr)
            raise


@pytest.fixture
def cluster(tmp_path: Path, s3_server) -> Iterator[Cluster]:
    server = ApiServer()
    kubeconfig = server.kubeconfig(tmp_path / "kubeconfig.json")
    env = {
        "FRAMESIFT_CACHE": str(tmp_path / "cache"),
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    kubelet = Kubelet(server, tmp_path, {"AWS_ENDPOINT_URL": s3_server.endpoint, "AWS_DEFAULT_REGION": "us-east-1"})
    operator = Operator(kubeconfig, tmp_path / "operator.log", env)
    operator.start(free_port(), free_port())
    yield Cluster(server, kubelet, operator, tmp_path)
    operator.stop()
    kubelet.stop()
    server.stop()
