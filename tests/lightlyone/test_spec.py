"""engine lightlyone at admission, in the plan and in one reconcile: what the client cannot
express is refused with the field path before any work; the Worker Job's shape; status from the
select pod's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from framesift.api.errors import ManifestError
from framesift.api.manifest import parse_run
from framesift.jobs.lightlyone import plan
from framesift.operator.manifests import build_worker_job, plan_objects
from framesift.operator.memory import MemoryCluster
from framesift.operator.runner import Reconciler, describe_pod, status_line
from tests.operator.test_manifests import restricted_violations

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pedestrians-lightlyone.yaml"


def example(**selector: object) -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["selector"].update(selector)
    return doc


def problems(doc: dict) -> str:
    with pytest.raises(ManifestError) as err:
        parse_run(doc, "run.yaml")
    return str(err.value)


def test_the_example_validates_and_maps_to_delegated_access() -> None:
    run = parse_run(example(), "x")
    env = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
    inp, out = plan.datasources(run, env)
    assert (inp.method, out.method) == ("set_s3_delegated_access_config",) * 2
    assert (
        out.kwargs["resource_path"] == "s3://my-lightly-bucket/pedestrians_lightly/"
        and out.kwargs["purpose"] == "LIGHTLY"
    )
    assert "AK" not in json.dumps(out.kwargs) and out.kwargs["region"] == "eu-central-1"
    assert plan.worker_label(run) == plan.dataset_name(run) == "framesift-local-pedestrians-lightlyone"
    config = plan.merged_worker_config(run)
    assert config["shutdown_when_job_finished"] is True and config["enable_training"] is False


@pytest.mark.parametrize(
    ("selector", "spec", "expected"),
    [
        ({"workerConfig": {"shutdown_when_job_finshed": True}}, {}, "spec.selector.workerConfig"),
        ({"workerConfig": {"shutdown_when_job_finished": False}}, {}, "must stay true"),
        ({"lightlyConfig": {"loader": {"batchsize": 16}}}, {}, "spec.selector.lightlyConfig"),
        ({"datasource": {"roleArn": "arn:aws:iam::12:role/x", "externalId": "long-enough-id"}}, {}, "roleArn"),
        ({"datasetName": "has.a.dot"}, {}, "spec.selector.datasetName"),
        ({}, {"output": {"uri": "file:///data/out/"}}, "spec.output.uri: engine lightlyone reads and writes buckets"),
        ({}, {"input": {"uri": "s3://b/in/", "region": "moon-1"}}, "does not list the S3 region 'moon-1'"),
    ],
)
def test_what_lightlyone_cannot_express_is_refused_with_its_field(selector: dict, spec: dict, expected: str) -> None:
    doc = example(**selector)
    doc["spec"].update(spec)
    assert expected in problems(doc)


def test_a_custom_endpoint_becomes_obs_and_refuses_delegated_access() -> None:
    doc = example()
    for where in ("input", "output"):
        doc["spec"][where]["endpointUrl"] = "http://minio:9000"
    assert "delegated access (an IAM role) is for AWS S3" in problems(doc)
    del doc["spec"]["selector"]["datasource"]
    run = parse_run(doc, "x")
    _, out = plan.datasources(run, {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"})
    assert out.method == "set_obs_config" and out.kwargs["obs_endpoint"] == "http://minio:9000"
    with pytest.raises(plan.PlanError, match="must hold AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        plan.datasources(run, {})


def test_the_worker_job_translates_docker_run_and_passes_restricted() -> None:
    run = parse_run(example(), "x")
    job = build_worker_job(run, "uid-1", "ml", "0123456789abcdef01234567")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "lightly/worker:2.11.0" and "command" not in container
    env = {e["name"]: e for e in container["env"]}
    assert env["LIGHTLY_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "lightly-token", "key": "token"}}
    assert env["LIGHTLY_WORKER_ID"]["value"] == "0123456789abcdef01234567"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1" and pod["nodeSelector"] == {"gpu": "t4"}
    assert {"name": "shm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert job["spec"]["backoffLimit"] == 0 and job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert restricted_violations(pod) == []
    kinds = [(o["kind"], o["metadata"]["name"]) for o in plan_objects(run, "u", "ml", "img", 3)]
    assert kinds[-1] == ("Job", "pedestrians-lightlyone-worker")
    select = next(o for o in plan_objects(run, "u", "ml", "img", 3) if o["metadata"]["name"].endswith("-select"))
    select_env = {e["name"]: e for e in select["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "valueFrom" in select_env["LIGHTLY_TOKEN"]


def test_reconcile_follows_the_select_pod_and_starts_the_worker() -> None:
    cluster = MemoryCluster()
    doc = example()
    doc["metadata"]["namespace"] = "ml"
    cluster.apply(doc, "ml", "uid-1")
    reconciler = Reconciler(cluster, "img")
    reconciler.reconcile("ml", "pedestrians-lightlyone")  # ConfigMap, list Job
    name = "pedestrians-lightlyone"
    cluster.finish_job("ml", f"{name}-list", {"videos": 2})
    reconciler.reconcile("ml", name)
    cluster.finish_job("ml", f"{name}-infer", {}, completedIndexes="0-1")
    reconciler.reconcile("ml", name)
    cluster.finish_job("ml", f"{name}-convert", {})
    reconciler.reconcile("ml", name)
    assert ("Job", "ml", f"{name}-select") in cluster.objects
    cluster.pods[f"{name}-select"] = [{"metadata": {"name": "sel-0"}, "status": {"phase": "Running"}}]
    ids = {"datasetId": "a" * 24, "workerId": "b" * 24, "scheduledRunId": "c" * 24, "state": "OPEN"}
    cluster.logs["sel-0"] = "noise\nFRAMESIFT_LIGHTLYONE " + json.dumps(ids) + "\n"
    reconciler.reconcile("ml", name)
    status = cluster.runs[("ml", name)]["status"]
    assert status["phase"] == "Selecting" and status["lightlyone"] == ids
    worker = cluster.objects[("Job", "ml", f"{name}-worker")]
    assert {"name": "LIGHTLY_WORKER_ID", "value": "b" * 24} in worker["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    assert ("Normal", "LightlyOneState", "LightlyOne run OPEN") in cluster.events


def test_status_lines_and_pod_descriptions() -> None:
    assert status_line('x\nFRAMESIFT_LIGHTLYONE {"state": "OPEN"}\nFRAMESIFT_LIGHTLYONE {"state": "EMBEDDING"}\ny') == {
        "state": "EMBEDDING"
    }
    assert status_line("FRAMESIFT_LIGHTLYONE not json") == {}
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "w:1"'}}
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Pending", "containerStatuses": [{"state": waiting}]}}
    assert describe_pod([pod]) == 'ImagePullBackOff: Back-off pulling image "w:1"'
    assert describe_pod([]).startswith("not created yet")


def test_admission_names_the_right_field_suggests_keys_and_never_echoes_a_token() -> None:
    datasource = {**example()["spec"]["selector"]["datasource"], "region": "moon-1"}
    assert "spec.selector.datasource.region: LightlyOne does not list the S3 region 'moon-1'" in problems(
        example(datasource=datasource)
    )
    said = problems(example(workerConfig={"shutdwn_when_job_finished": True}))
    assert "unknown key 'shutdwn_when_job_finished' (did you mean 'shutdown_when_job_finished'?)" in said
    assert "shutdwnWhenJobFinished" not in said
    said = problems(example(token="planted-secret-123"))  # a token inline instead of a Secret reference
    assert "spec.selector.token" in said and "planted-secret-123" not in said
    assert "spec.selector.workerImage" in problems(example(workerImage="Not An Image!"))
    parse_run(example(workerImage="registry.example.com:5000/lightly/worker:v2.1@sha256:" + "a" * 64), "x")


def test_one_admission_names_every_lightlyone_problem() -> None:
    doc = example(workerConfig={"shutdwn_when_job_finished": True})
    doc["spec"]["output"] = {"uri": "file:///data/out/"}
    said = problems(doc)
    assert "spec.selector.workerConfig" in said and "spec.output.uri: engine lightlyone reads and writes" in said
