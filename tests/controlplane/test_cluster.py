"""The operator against a REAL control plane (etcd, kube-apiserver with RBAC, the
kube-controller-manager's Job and garbage-collector controllers, Kueue's controller manager), the
chart installed with helm,
the operator process running as the chart's ServiceAccount (a TokenRequest token), so every call
it makes passes or fails the chart's RBAC for real, and the real Job controller deciding what
happened to each index."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from framesift.api.models import Location
from framesift.api.vocabulary import WAITING_FOR_ADMISSION, Condition
from framesift.jobs.storage import open_storage
from tests.controlplane.cluster import ControlPlane, kubeconfig
from tests.controlplane.kueue import Kueue
from tests.controlplane.node import Node
from tests.helpers import free_port, helm, manifest, synthetic_video
from tests.operator.harness import FRAMESIFT, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
NS = "vision"
RELEASE_NS = "framesift-system"


@pytest.fixture(scope="module")
def plane(
    tmp_path_factory: pytest.TempPathFactory, s3_server
) -> Iterator[tuple[ControlPlane, Node, subprocess.Popen[bytes], Path]]:
    work = tmp_path_factory.mktemp("controlplane")
    cp = ControlPlane(work).start()
    kueue = Kueue(cp, work).start()
    node = Node(cp.api(), work, {"AWS_ENDPOINT_URL": s3_server.endpoint, "AWS_DEFAULT_REGION": "us-east-1"})
    # the chart, installed for real: CRDs, ServiceAccount, ClusterRole and binding, Deployment
    subprocess.run(
        [helm(), "install", "fs", str(REPO / "charts" / "framesift"), "--kubeconfig", str(cp.admin_kubeconfig),
         "--namespace", RELEASE_NS, "--create-namespace", "--wait=false"],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    sa = json.loads(cp.kubectl("get", "serviceaccount", "-n", RELEASE_NS, "-o", "json").stdout)["items"]
    name = next(s["metadata"]["name"] for s in sa if s["metadata"]["name"] != "default")
    token = cp.service_account_token(RELEASE_NS, name)
    operator_kubeconfig = kubeconfig(work / "operator.kubeconfig", cp.url, token)
    cp.kubectl("create", "namespace", NS)
    log = work / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(operator_kubeconfig), "FRAMESIFT_CACHE": str(work / "cache")}
    operator = subprocess.Popen(
        [FRAMESIFT, "operator", "--image", "framesift:test", "--resync", "2",
         "--metrics-port", str(free_port()), "--liveness-port", str(free_port())],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield cp, node, operator, work
    operator.kill()
    node.stop()
    kueue.stop()
    cp.stop()


def _buckets(cp: ControlPlane, s3_server) -> tuple[str, str, Any, dict[str, Any]]:
    """Input and output buckets, a store on the input, and the Secret-backed location of both."""
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    creds = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    store = open_storage(
        Location(uri=f"s3://{src}/videos/", pathStyle=True, endpointUrl=s3_server.endpoint), credentials=creds
    )
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-credentials"}, "stringData": creds}
    cp.kubectl("apply", "-n", NS, "-f", "-", input_text=json.dumps(secret))
    return src, dst, store, {"credentials": {"secretName": "s3-credentials"}, "pathStyle": True}


def _wait_condition(cp: ControlPlane, name: str, condition: str = "Succeeded") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(cp.admin_kubeconfig), "wait", "-n", NS, f"--for=condition={condition}",
         f"activelearningrun/{name}", "--timeout=600s"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_a_run_on_the_real_control_plane(plane, s3_server, real_videos: Path, tmp_path: Path) -> None:
    cp, _node, operator, work = plane
    api = cp.api()
    # the CRD's structural schema is accepted, and refuses what it can express at apply
    bad = manifest("bad", "s3://b/in/", "s3://b/out/", selector={"engine": "another"})
    refused = cp.kubectl("apply", "-n", NS, "-f", "-", input_text=json.dumps(bad), check=False)
    assert refused.returncode != 0 and "spec.selector.engine" in refused.stderr

    src, dst, store, location = _buckets(cp, s3_server)
    store.upload_file(real_videos / "bikes.mp4", "bikes.mp4")
    good = synthetic_video(tmp_path / "a.mp4", frames=30, codec="libx264", seed=1)
    broken = tmp_path / "b.mp4"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    store.upload_file(broken, "b.mp4")
    selection = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    run = manifest(
        "real",
        f"s3://{src}/videos/",
        f"s3://{dst}/out/",
        input=dict(location),
        output=dict(location),
        selection=selection,
    )
    cp.kubectl("apply", "-n", NS, "-f", "-", input_text=json.dumps(run))

    waited = _wait_condition(cp, "real")
    status = json.loads(cp.kubectl("get", "alr", "real", "-n", NS, "-o", "json").stdout)["status"]
    assert waited.returncode == 0, (status, (work / "operator.log").read_text()[-3000:])
    # the truncated video failed its own index through the real podFailurePolicy (exit 3: FailIndex)
    assert status["videos"] == {"total": 2, "done": 1, "failed": 1, "failedVideos": status["videos"]["failedVideos"]}
    assert status["videos"]["failedVideos"][0]["name"] == "b.mp4" and status["selected"] == 6
    infer = json.loads(cp.kubectl("get", "job", "real-infer", "-n", NS, "-o", "json").stdout)
    assert infer["status"]["failedIndexes"] == "0" and infer["status"]["completedIndexes"] == "1"  # b.mp4 sorts first
    table = cp.kubectl("get", "alr", "-n", NS).stdout
    assert table.split("\n")[0].split()[:5] == ["NAME", "PHASE", "VIDEOS", "SELECTED", "LIGHTLYONE"]
    assert "Succeeded" in table

    # deleting the run removes its Jobs, pods and ConfigMap through the real garbage collector
    cp.kubectl("delete", "alr", "real", "-n", NS)
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)

    def gone() -> bool:
        jobs = batch.list_namespaced_job(NS).items
        pods = core.list_namespaced_pod(NS).items
        cms = [c for c in core.list_namespaced_config_map(NS).items if c.metadata.name.startswith("real-")]
        return not jobs and not pods and not cms

    wait_for(gone, 120, "garbage collection of the run's children")
    assert operator.poll() is None, "the operator process is still up (no RBAC error killed it)"
    assert "Forbidden" not in (work / "operator.log").read_text()


def test_kueue_holds_the_second_run_until_the_first_one_s_inference_is_done(plane, s3_server, tmp_path: Path) -> None:
    """A ClusterQueue with one nvidia.com/gpu (examples/kueue-queues.yaml, shown in
    docs/operator.md); two runs asking one GPU per inference pod: the second's inference Job stays
    suspended, its status saying it waits for admission, until the first's inference is done."""
    cp, node, operator, work = plane
    queues = (REPO / "examples" / "kueue-queues.yaml").read_text()
    assert queues.split("\n", 4)[-1].strip() in (REPO / "docs" / "operator.md").read_text(), "the docs show it"
    cp.kubectl("apply", "-f", str(REPO / "examples" / "kueue-queues.yaml"))
    src, dst, store, location = _buckets(cp, s3_server)
    store.upload_file(synthetic_video(tmp_path / "q.mp4", frames=12, codec="libx264", seed=3), "q.mp4")
    selection = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    batch = client.BatchV1Api(cp.api())

    def apply(name: str) -> None:
        run = manifest(
            name, f"s3://{src}/videos/", f"s3://{dst}/{name}/", input=dict(location), output=dict(location),
            selection=selection, resources={"queueName": "gpu", "infer": {"gpus": 1}},
        )  # fmt: skip
        cp.kubectl("apply", "-n", NS, "-f", "-", input_text=json.dumps(run))

    def infer_job(name: str) -> Any:
        jobs = [j for j in batch.list_namespaced_job(NS).items if j.metadata.name == f"{name}-infer"]
        return jobs[0] if jobs else None

    node.held.add("first-infer")  # the first run's inference holds the GPU until released
    apply("first")
    wait_for(lambda: (job := infer_job("first")) is not None and job.spec.suspend is False, 120, "Kueue admits first")
    apply("second")
    wait_for(lambda: infer_job("second") is not None, 120, "the second run's inference Job")

    def second_waits() -> bool:
        run = json.loads(cp.kubectl("get", "alr", "second", "-n", NS, "-o", "json").stdout)
        return WAITING_FOR_ADMISSION in (run.get("status") or {}).get("message", "")

    wait_for(second_waits, 60, "the second run's status to say it waits for admission")
    # a spec change after the start is reported, not acted on
    change = json.dumps({"spec": {"selection": {"n_samples": 1}}})
    cp.kubectl("patch", "alr", "first", "-n", NS, "--type=merge", "-p", change)

    def change_reported() -> bool:
        run = json.loads(cp.kubectl("get", "alr", "first", "-n", NS, "-o", "json").stdout)
        conditions = (run.get("status") or {}).get("conditions", [])
        return any(c["type"] == Condition.SPEC_CHANGE_IGNORED and c["status"] == "True" for c in conditions)

    wait_for(change_reported, 60, "the first run to report its spec change")
    workloads = json.loads(cp.kubectl("get", "workloads", "-n", NS, "-o", "json").stdout)["items"]
    pending = [w for w in workloads if w["metadata"]["ownerReferences"][0]["name"] == "second-infer"]
    assert pending and not any(c["type"] == "Admitted" and c["status"] == "True"
                               for c in pending[0]["status"].get("conditions", []))  # fmt: skip
    assert infer_job("second").spec.suspend is True

    node.held.discard("first-infer")  # inference done: its quota goes back, the second is admitted
    for name in ("first", "second"):
        waited = _wait_condition(cp, name)
        logs = [(work / log).read_text()[-3000:] for log in ("operator.log", "kueue.log")]
        assert waited.returncode == 0, logs
    first = json.loads(cp.kubectl("get", "alr", "first", "-n", NS, "-o", "json").stdout)["status"]
    assert first["selected"] == 2, "the run kept its first spec (n_samples 2)"
    assert operator.poll() is None and "Forbidden" not in (work / "operator.log").read_text()
