"""engine lightlyone under the operator (kopf against kmock, the test kubelet, a real S3 server):
the select Job drives the stand-in Lightly API with the real client, the operator starts the
Worker Job from the select pod's report and plays the stand-in Worker as its pod; status,
Events, export as with builtin. Drills: 403, 402, a CRASHED run, a Worker that never comes,
the API down for a while, the operator killed between schedule and completion."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from framesift.api.vocabulary import Reason
from tests.helpers import free_port
from tests.lightlyone.fixtures import REPO, TOKEN, WORKER, lightly_run, upload_videos
from tests.lightlyone.standin_api import StandinApi
from tests.lightlyone.test_local import output_store
from tests.operator.harness import Cluster, wait_for
from tests.operator.test_operator import NS, s3_credentials

pytestmark = pytest.mark.slow


def start(cluster: Cluster, s3_server, api: StandinApi, real_videos: Path, name: str, **selector: object) -> str:
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    upload_videos(s3_server, src, real_videos, cluster.workdir)
    if not cluster.workdir.joinpath("secrets-made").exists():  # once per cluster
        s3_credentials(cluster, s3_server)
        cluster.create_secret(NS, "lightly-token", {"token": TOKEN})
        cluster.workdir.joinpath("secrets-made").touch()
    cluster.kubelet.images["lightly/worker:"] = WORKER
    cluster.kubelet.env["PYTHONPATH"] = str(REPO)
    doc = lightly_run(name, src, dst, s3_server.endpoint, api.url, **selector)
    for where in ("input", "output"):
        doc["spec"][where]["credentials"] = {"secretName": "s3-credentials"}
    doc["metadata"]["namespace"] = NS
    cluster.apply_run(NS, doc)
    return dst


def events(cluster: Cluster, name: str) -> list[tuple[str, str]]:
    return [(e["reason"], e["message"]) for e in cluster.events(NS) if e["involvedObject"]["name"] == name]


def everything_said(cluster: Cluster) -> str:
    said = [json.dumps(cluster.jobs(NS)), json.dumps(cluster.configmaps(NS)), json.dumps(cluster.events(NS))]
    said.append(cluster.operator.log.read_text())
    said += [p.read_text(errors="replace") for p in cluster.kubelet.logs if p.exists()]
    return "\n".join(said)


def test_lightlyone_run_succeeds_and_survives_an_operator_restart(
    cluster: Cluster, s3_server, real_videos: Path, lightly_api: StandinApi
) -> None:
    # the select pod is killed (SIGKILL) the moment its run is scheduled: its retry must adopt it
    cluster.kubelet.kill_first = "select"
    cluster.kubelet.kill_when = lambda: bool(lightly_api.state.scheduled)
    dst = start(cluster, s3_server, lightly_api, real_videos, "lo1")
    # and the operator is killed once the run is scheduled, before it completes; restarted a moment later
    wait_for(lambda: lightly_api.state.scheduled, 300, "the LightlyOne run to be scheduled", 0.2)
    cluster.operator.stop()
    time.sleep(2)
    cluster.operator.start(free_port(), free_port())
    run = cluster.wait_phase(NS, "lo1", ("Succeeded", "Failed"))
    assert run["status"]["phase"] == "Succeeded", run["status"].get("message")

    status = run["status"]
    lightlyone = status["lightlyone"]
    assert lightlyone["state"] == "COMPLETED"
    assert lightlyone["datasetId"] in lightly_api.state.datasets
    assert lightlyone["scheduledRunId"] in lightly_api.state.scheduled
    assert lightlyone["runId"] in lightly_api.state.runs and lightlyone["workerId"]
    assert status["selected"] == 6 and sum(status["perVideoSelected"].values()) == 6
    assert cluster.kubelet.killed and cluster.kubelet.killed[0].startswith("lo1-select")
    assert len(lightly_api.calls_to("POST", r"/v1/datasets/[a-f0-9]{24}/docker/worker/schedule")) == 1
    assert len(lightly_api.calls_to("POST", r"/v1/datasets")) == 1
    assert len({c.body["name"] for c in lightly_api.calls_to("POST", r"/v1/docker/worker")}) == 1
    assert not lightly_api.state.workers, "deregistered"

    states = [m for r, m in events(cluster, "lo1") if r == Reason.LIGHTLYONE_STATE]
    assert states[0].startswith("LightlyOne run OPEN") and states[-1].startswith("LightlyOne run COMPLETED")

    (worker,) = [j for j in cluster.jobs(NS) if j["metadata"]["labels"]["framesift.dev/stage"] == "worker"]
    pod = worker["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["LIGHTLY_TOKEN"] == {
        "name": "LIGHTLY_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "lightly-token", "key": "token"}},
    }
    assert env["LIGHTLY_WORKER_ID"]["value"] == lightlyone["workerId"]
    assert pod["volumes"] == [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}]
    assert worker["metadata"]["ownerReferences"][0]["name"] == "lo1"

    out = output_store(s3_server, dst)
    assert out.read_bytes("runs/lo1/lightlyone-report.pdf").startswith(b"%PDF")
    assert len(json.loads(out.read_text("runs/lo1/export.json"))) == 6
    assert TOKEN not in everything_said(cluster) + json.dumps(run)


def test_rejected_token_fails_the_run_with_its_reason(
    cluster: Cluster, s3_server, real_videos: Path, lightly_api: StandinApi
) -> None:
    lightly_api.state.token = "rotated"
    start(cluster, s3_server, lightly_api, real_videos, "lo2")
    run = cluster.wait_phase(NS, "lo2", ("Succeeded", "Failed"))
    failed = next(c for c in run["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == Reason.LIGHTLYONE_TOKEN_REJECTED
    assert "'lightly-token', key 'token'" in failed["message"]
    assert (Reason.LIGHTLYONE_TOKEN_REJECTED, run["status"]["message"]) in events(cluster, "lo2")
    assert TOKEN not in everything_said(cluster)


def test_plan_limit_and_crashed_run(cluster: Cluster, s3_server, real_videos: Path, lightly_api: StandinApi) -> None:
    lightly_api.state.answers.append(
        ("POST", r"/v1/datasets", 402, "Your plan allows 2 datasets; upgrade to create more")
    )
    start(cluster, s3_server, lightly_api, real_videos, "lo3")
    run = cluster.wait_phase(NS, "lo3", ("Succeeded", "Failed"))
    assert run["status"]["conditions"][0]["reason"] == Reason.LIGHTLYONE_PLAN_LIMIT
    assert "Your plan allows 2 datasets" in run["status"]["message"]

    lightly_api.state.answers.clear()
    lightly_api.state.crash_at = "EMBEDDING"
    start(cluster, s3_server, lightly_api, real_videos, "lo4")
    run = cluster.wait_phase(NS, "lo4", ("Succeeded", "Failed"))
    assert run["status"]["conditions"][0]["reason"] == Reason.LIGHTLYONE_RUN_FAILED
    assert "CRASHED" in run["status"]["message"] and "out of shared memory" in run["status"]["message"]
    assert run["status"]["lightlyone"]["state"] == "CRASHED"


def test_worker_that_never_comes_and_an_api_outage(
    cluster: Cluster, s3_server, real_videos: Path, lightly_api: StandinApi
) -> None:
    start(
        cluster, s3_server, lightly_api, real_videos, "lo5", workerImage="registry.invalid/worker:1", pickupTimeout="4s"
    )
    run = cluster.wait_phase(NS, "lo5", ("Succeeded", "Failed"))
    assert run["status"]["conditions"][0]["reason"] == Reason.LIGHTLYONE_PICKUP_TIMEOUT
    assert "ImagePullBackOff" in run["status"]["message"] and "registry.invalid/worker:1" in run["status"]["message"]
    wait_for(
        lambda: not [j for j in cluster.jobs(NS) if j["metadata"]["name"] == "lo5-worker"],
        30,
        "the Worker Job to be deleted",
    )

    # the API goes away for a few seconds while the run is polled, then comes back
    start(cluster, s3_server, lightly_api, real_videos, "lo6")
    wait_for(lambda: lightly_api.state.runs, 300, "a Worker to pick the run up", 0.2)
    lightly_api.state.down = True
    time.sleep(4)
    lightly_api.state.down = False
    run = cluster.wait_phase(NS, "lo6", ("Succeeded", "Failed"))
    assert run["status"]["phase"] == "Succeeded", run["status"].get("message")
