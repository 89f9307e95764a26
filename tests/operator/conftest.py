from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.operator.harness import ApiServer, Cluster, Kubelet, Operator

GROUP, VERSION, PLURAL = "framesift.dev", "v1alpha1", "activelearningruns"


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
