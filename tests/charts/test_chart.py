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


def _rules(doc: dict) -> set[tuple[str, str, str]]:
    return {
        (g, r, v) for rule in doc["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }


def test_rbac_grants_nothing_on_secrets_cluster_wide_or_namespaced() -> None:
    for docs in (render(), render("watchNamespaces={team-a,team-b}")):
        for doc in docs:
            if doc["kind"] in ("ClusterRole", "Role"):
                assert not [r for r in _rules(doc) if r[1] == "secrets"], doc["metadata"]["name"]
    deployment = next(d for d in render() if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_a_namespaced_install_binds_roles_only_in_its_namespaces() -> None:
    docs = render("watchNamespaces={team-a,team-b}")
    roles = [d for d in docs if d["kind"] == "Role"]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(d["metadata"]["namespace"] for d in roles) == ["team-a", "team-b"]
    assert sorted(d["metadata"]["namespace"] for d in bindings) == ["team-a", "team-b"]
    (cluster_role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert _rules(cluster_role) == {
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    }
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    cluster_wide = next(d for d in render() if d["kind"] == "ClusterRole")
    assert _rules(roles[0]) == _rules(cluster_wide) - _rules(cluster_role)  # the same rules, namespaced
    args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
