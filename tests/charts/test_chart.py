"""The Helm chart: lints, renders, validates against the Kubernetes schemas, ships the generated CRD."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.helpers import helm

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "framesift"


def render(*values: str) -> list[dict]:
    args = [helm(), "template", "fs", str(CHART), "--namespace", "framesift-system", "--include-crds"]
    for value in values:
        args += ["--set", value]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_chart_lints() -> None:
    result = subprocess.run([helm(), "lint", str(CHART)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_ships_the_generated_crd() -> None:
    assert (CHART / "crds" / "framesift.dev_activelearningruns.yaml").read_text() == (
        REPO / "crds" / "framesift.dev_activelearningruns.yaml"
    ).read_text()


@pytest.mark.parametrize("values", [(), ("watchNamespaces={team-a,team-b}", "metrics.serviceMonitor=false")])
def test_rendered_objects_validate(values: tuple[str, ...]) -> None:
    docs = render(*values)
    kinds = sorted(d["kind"] for d in docs)
    assert "Deployment" in kinds and "CustomResourceDefinition" in kinds
    for doc in docs:
        for version in ("1.30", kubernetes_validate.latest_version()):
            kubernetes_validate.validate(doc, version, strict=True)


def test_operator_deployment_is_single_recreate_nonroot_with_probe() -> None:
    deployment = next(d for d in render() if d["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["command"] == ["framesift", "operator"]


def test_run_defaults_reach_the_operator() -> None:
    docs = render("runDefaults.resources.queueName=team-gpus")
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    assert yaml.safe_load(cm["data"]["defaults.yaml"])["resources"]["queueName"] == "team-gpus"
