"""kopf running for real against an API server (kmock), a test kubelet running each Job's
command, a real S3 server on 127.0.0.1: the run goes from apply to Succeeded."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from framesift.api.crd import crd
from framesift.api.models import Location
from framesift.jobs.storage import open_storage
from tests.helpers import free_port, helm, manifest, synthetic_video
from tests.operator.harness import Cluster, allowed, operator_calls, wait_for

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def chart_rules() -> list[dict]:
    import subprocess

    import yaml

    out = subprocess.run(
        [helm(), "template", "fs", str(REPO / "charts" / "framesift")], capture_output=True, text=True, check=True
    ).stdout
    role = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "ClusterRole")
    return list(role["rules"])


NS = "vision"
# what only engine lightlyone needs: the select pod's log (live status), deleting a waiting Worker
LIGHTLYONE_RULES = {("get", "", "pods/log"), ("delete", "batch", "jobs")}
# what only schedules need (tests/operator/test_schedule_operator.py shows them in use)
SCHEDULE_RULES = {
    ("create", "framesift.dev", "activelearningruns"),
    ("delete", "framesift.dev", "activelearningruns"),
    ("get", "framesift.dev", "activelearningschedules"),
    ("patch", "framesift.dev", "activelearningschedules/status"),
}
SECRET_VALUE = "planted-secret-3f9c1b7e"


def s3_credentials(cluster: Cluster, s3_server) -> None:
    cluster.create_secret(
        NS,
        "s3-credentials",
        {
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
            "FRAMESIFT_PLANTED": SECRET_VALUE,
        },
    )


def s3_run(name: str, src: str, dst: str, **spec: object) -> dict:
    creds = {"credentials": {"secretName": "s3-credentials"}, "pathStyle": True}
    doc = manifest(name, f"s3://{src}/videos/", f"s3://{dst}/lightly/", input=creds, output=dict(creds), **spec)
    doc["metadata"]["namespace"] = NS
    return doc


def upload(s3_server, bucket: str, files: dict[str, Path]) -> None:
    store = open_storage(
        Location(uri=f"s3://{bucket}/videos/", pathStyle=True, endpointUrl=s3_server.endpoint),
        credentials={"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key},
    )
    for key, path in files.items():
        store.upload_file(path, key)


SELECTION = {
    "n_samples": 40,
    "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {
            "input": {"type": "METADATA", "key": "video_name"},
            "strategy": {"type": "BALANCE", "target": {"vtest": 0.5, "bikes": 0.5}},
        },
    ],
}


def test_run_over_the_real_clips_reaches_succeeded(cluster: Cluster, s3_server, real_videos: Path) -> None:
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    upload(s3_server, src, {"vtest.avi": real_videos / "vtest.avi", "bikes.mp4": real_videos / "bikes.mp4"})
    s3_credentials(cluster, s3_server)
    cluster.create_secret(NS, "unrelated-api-token", {"TOKEN": SECRET_VALUE})  # nothing may read this
    doc = s3_run("clips", src, dst, selection=SELECTION)
    jsonschema.validate(doc, crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    cluster.apply_run(NS, doc)
    run = cluster.wait_phase(NS, "clips", ("Succeeded", "Failed"))
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    assert status["videos"] == {"total": 2, "done": 2, "failed": 0, "failedVideos": []}
    assert status["frames"] == {"total": 1045, "corrupt": 0}
    assert status["selected"] == 40 and status["perVideoSelected"] == {"bikes.mp4": 20, "vtest.avi": 20}
    assert status["reportUri"] == f"s3://{dst}/lightly/runs/clips/report.html"
    assert status["exportUri"] == f"s3://{dst}/lightly/runs/clips/export.json"
    assert status["startedAt"] and status["finishedAt"] and status["observedGeneration"] == 1
    succeeded = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert succeeded["status"] == "True"

    jobs = cluster.jobs(NS)
    assert sorted(j["metadata"]["name"] for j in jobs) == [
        "clips-convert",
        "clips-export",
        "clips-infer",
        "clips-list",
        "clips-select",
    ]
    for obj in jobs + cluster.configmaps(NS):
        clean = json.loads(json.dumps(obj))
        clean.pop("status", None)
        for version in ("1.30", kubernetes_validate.latest_version()):
            kubernetes_validate.validate(clean, version, strict=True)
    reasons = [e["reason"] for e in cluster.events(NS)]
    for reason in ("Pending", "Inferring", "Converting", "Selecting", "Exporting", "Succeeded"):
        assert reason in reasons
    # export and report landed in S3
    output = open_storage(
        Location(uri=f"s3://{dst}/lightly/", pathStyle=True, endpointUrl=s3_server.endpoint),
        credentials={"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key},
    )
    assert len(list(output.list("frames"))) == 40
    assert output.exists("runs/clips/report.pdf") and output.exists("runs/clips/labelstudio.json")
    assert len(json.loads(output.read_text("runs/clips/export.json"))) == 40

    # metrics and liveness from the operator process
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{cluster.operator.metrics_port}/metrics").read().decode()
    assert 'framesift_runs{phase="Succeeded"} 1.0' in metrics
    assert "framesift_stage_duration_seconds_count" in metrics
    health = urllib.request.urlopen(f"http://127.0.0.1:{cluster.operator.liveness_port}/healthz")
    assert health.status == 200

    # the planted secret value is nowhere: status, events, ConfigMaps, annotations, operator log
    everything = json.dumps([cluster.run(NS, "clips"), cluster.events(NS), cluster.configmaps(NS), jobs])
    assert SECRET_VALUE not in everything
    assert SECRET_VALUE not in cluster.operator.log.read_text()
    assert s3_server.secret_key not in everything and s3_server.secret_key not in cluster.operator.log.read_text()

    # every call the operator made is allowed by the chart's RBAC, and every rule is used
    rules = chart_rules()
    calls = operator_calls(cluster.server)
    assert ("create", "batch", "jobs") in calls and ("patch", "framesift.dev", "activelearningruns/status") in calls
    assert ("list", "", "pods") in calls and ("create", "", "events") in calls
    # least privilege: the operator never asked for a Secret, not even the run's own
    assert not [c for c in calls if c[2] == "secrets"], calls
    assert not any(rule for rule in rules if "secrets" in rule["resources"])
    denied = sorted(c for c in calls if not allowed(rules, *c))
    assert denied == [], f"calls the chart's ClusterRole does not allow: {denied}"
    granted = {(v, g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    unused = sorted(granted - calls - LIGHTLYONE_RULES - SCHEDULE_RULES)  # other tests show those in use
    assert unused == [], "rules the operator never needed: make the ClusterRole minimal"

    # deleting the run garbage-collects its children (no finalizer in the way)
    assert not run["metadata"].get("finalizers")
    cluster.delete_run(NS, "clips")
    wait_for(lambda: not cluster.jobs(NS) and not cluster.configmaps(NS), 30, "garbage collection")


def test_truncated_video_fails_its_index_and_the_run_succeeds(cluster: Cluster, s3_server, tmp_path: Path) -> None:
    good_a = synthetic_video(tmp_path / "a.mp4", frames=30, codec="libx264", seed=1)
    good_c = synthetic_video(tmp_path / "c.mp4", frames=30, codec="libx264", seed=2)
    broken = tmp_path / "b.mp4"
    broken.write_bytes(good_a.read_bytes()[: good_a.stat().st_size // 2])
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    upload(s3_server, src, {"a.mp4": good_a, "b.mp4": broken, "c.mp4": good_c})
    s3_credentials(cluster, s3_server)
    selection = {"n_samples": 10, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    cluster.apply_run(NS, s3_run("trunc", src, dst, selection=selection))
    status = cluster.wait_phase(NS, "trunc", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Succeeded", status
    assert status["videos"]["total"] == 3 and status["videos"]["done"] == 2 and status["videos"]["failed"] == 1
    assert [v["name"] for v in status["videos"]["failedVideos"]] == ["b.mp4"]
    reason = status["videos"]["failedVideos"][0]["reason"]  # the index's own words, from its pod's summary
    assert reason and reason != "inference failed (see the index's pod)", reason
    infer = next(j for j in cluster.jobs(NS) if j["metadata"]["name"] == "trunc-infer")
    assert infer["status"]["failedIndexes"] == "1" and infer["status"]["failed"] == 1  # exit 3: no retry
    assert any(e["reason"] == "VideosFailed" and "b.mp4" in e["message"] for e in cluster.events(NS))


def test_a_job_that_fails_outright_fails_the_run(cluster: Cluster, s3_server, tmp_path: Path) -> None:
    video = synthetic_video(tmp_path / "a.mp4", frames=20, codec="libx264")
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    upload(s3_server, src, {"a.mp4": video})
    s3_credentials(cluster, s3_server)
    cluster.kubelet.fail_stage = "convert"
    cluster.apply_run(NS, s3_run("crash", src, dst))
    status = cluster.wait_phase(NS, "crash", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Failed"
    assert "crash-convert failed: BackoffLimitExceeded" in status["message"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "ConvertFailed"
    warnings = [e for e in cluster.events(NS) if e["type"] == "Warning"]
    assert any(e["reason"] == "ConvertFailed" and "BackoffLimitExceeded" in e["message"] for e in warnings)


def test_restarts_between_stages_create_each_job_once(cluster: Cluster, s3_server, tmp_path: Path) -> None:
    video = synthetic_video(tmp_path / "a.mp4", frames=20, codec="libx264")
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    upload(s3_server, src, {"a.mp4": video})
    s3_credentials(cluster, s3_server)
    selection = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    cluster.apply_run(NS, s3_run("restart", src, dst, selection=selection))
    seen: list[str] = []
    while True:
        run = cluster.wait_phase(
            NS, "restart", ("Inferring", "Converting", "Selecting", "Exporting", "Succeeded", "Failed")
        )
        phase = run["status"]["phase"]
        if phase in ("Succeeded", "Failed"):
            break
        if phase not in seen:
            seen.append(phase)
            cluster.operator.stop()  # killed mid-run, between stages
            cluster.operator.start(free_port(), free_port())
        else:
            wait_for(lambda p=phase: cluster.run(NS, "restart")["status"]["phase"] != p, 300, f"leaving {phase}")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert len(seen) >= 3
    names = [j["metadata"]["name"] for j in cluster.jobs(NS)]
    assert sorted(names) == ["restart-convert", "restart-export", "restart-infer", "restart-list", "restart-select"]
    assert len(cluster.configmaps(NS)) == 1


def test_kueue_queue_creates_suspended_labelled_jobs(cluster: Cluster, s3_server, tmp_path: Path) -> None:
    video = synthetic_video(tmp_path / "a.mp4", frames=10, codec="libx264")
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    upload(s3_server, src, {"a.mp4": video})
    s3_credentials(cluster, s3_server)
    cluster.apply_run(NS, s3_run("queued", src, dst, resources={"queueName": "team-gpus"}))
    listing = wait_for(
        lambda: next((j for j in cluster.jobs(NS) if j["metadata"]["name"] == "queued-list"), None),
        60,
        "the list Job",
    )
    assert listing["spec"]["suspend"] is True  # every Job goes through the queue
    assert listing["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-gpus"
    from kubernetes import client as k8s

    k8s.BatchV1Api(cluster.api).patch_namespaced_job(  # Kueue admits it (here: the test does)
        "queued-list", NS, {"spec": {"suspend": False}}, _preload_content=False
    )
    job = wait_for(
        lambda: next((j for j in cluster.jobs(NS) if j["metadata"]["name"] == "queued-infer"), None),
        60,
        "the inference Job",
    )
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-gpus"
    run = wait_for(lambda: (cluster.run(NS, "queued").get("status") or {}).get("message"), 30, "a status message")
    assert "waiting for admission" in run
    import time

    time.sleep(3)  # the operator must never unsuspend it itself
    job = next(j for j in cluster.jobs(NS) if j["metadata"]["name"] == "queued-infer")
    assert job["spec"]["suspend"] is True and not job.get("status", {}).get("startTime")


def test_invalid_spec_and_spec_changes_show_in_status(cluster: Cluster, s3_server, tmp_path: Path) -> None:
    s3_credentials(cluster, s3_server)
    bad = s3_run("bad", "nobucket", "nobucket")
    bad["spec"]["model"]["conf"] = 7
    cluster.apply_run(NS, bad)
    status = cluster.wait_phase(NS, "bad", ("Failed",), timeout=60)["status"]
    assert "spec.model.conf" in status["message"]
    assert next(c for c in status["conditions"] if c["type"] == "Failed")["reason"] == "InvalidSpec"

    video = synthetic_video(tmp_path / "a.mp4", frames=10, codec="libx264")
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    upload(s3_server, src, {"a.mp4": video})
    cluster.apply_run(NS, s3_run("change", src, dst, resources={"queueName": "hold"}))
    wait_for(lambda: any(j["metadata"]["name"] == "change-list" for j in cluster.jobs(NS)), 60, "list Job")
    cluster.patch_run(NS, "change", {"spec": {"model": {"conf": 0.5}}})
    cond = wait_for(
        lambda: next(
            (
                c
                for c in (cluster.run(NS, "change").get("status") or {}).get("conditions", [])
                if c["type"] == "SpecChangeIgnored"
            ),
            None,
        ),
        60,
        "SpecChangeIgnored",
    )
    assert cond["status"] == "True" and cond["observedGeneration"] == 2
    cm = next(c for c in cluster.configmaps(NS) if c["metadata"]["name"] == "change-config")
    assert "conf: 0.0001" in cm["data"]["run.yaml"]  # the Jobs keep the spec the run started with


def test_an_inference_pod_killed_mid_video_is_retried_and_the_run_succeeds(
    cluster: Cluster, s3_server, tmp_path: Path
) -> None:
    """Drill: the pod of index 0 is SIGKILLed mid-inference (exit 137, as an OOM kill); the Job
    controller retries the index (backoffLimitPerIndex), the retry finishes, the run succeeds."""
    long = synthetic_video(tmp_path / "a.mp4", frames=400, codec="libx264", seed=1)
    short = synthetic_video(tmp_path / "b.mp4", frames=20, codec="libx264", seed=2)
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    upload(s3_server, src, {"a.mp4": long, "b.mp4": short})
    s3_credentials(cluster, s3_server)
    cluster.kubelet.kill_first, cluster.kubelet.kill_after_s = "infer", 6.0
    cluster.apply_run(NS, s3_run("oom", src, dst))
    status = cluster.wait_phase(NS, "oom", ("Succeeded", "Failed"))["status"]
    assert cluster.kubelet.killed, "the drill never killed a pod (it finished too fast)"
    assert status["phase"] == "Succeeded", status
    assert status["videos"] == {"total": 2, "done": 2, "failed": 0, "failedVideos": []}
    infer = next(j for j in cluster.jobs(NS) if j["metadata"]["name"] == "oom-infer")
    assert infer["status"]["completedIndexes"] == "0,1" and infer["status"]["failed"] == 1
    pods = k8s_pods(cluster, "oom-infer")
    killed = [p for p in pods if p["metadata"]["name"] in cluster.kubelet.killed]
    assert killed and killed[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137


def k8s_pods(cluster: Cluster, job_name: str) -> list[dict]:
    from kubernetes import client as k8s

    pods = json.loads(k8s.CoreV1Api(cluster.api).list_namespaced_pod(NS, _preload_content=False).data)["items"]
    return [p for p in pods if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == job_name]
