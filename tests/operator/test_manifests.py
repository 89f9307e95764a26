"""The operator's manifests: pure functions, checked against the official Kubernetes schemas."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from framesift.api.manifest import load_run, parse_run
from framesift.api.vocabulary import ExitCode
from framesift.operator.manifests import build_configmap, build_job, child_name, plan_objects

REPO = Path(__file__).resolve().parents[2]
VERSIONS = ["1.30", kubernetes_validate.latest_version()]
VIDEOS = 3


def seed_run(**resources: object):
    doc = yaml.safe_load((REPO / "examples" / "pedestrians.yaml").read_text())
    doc["spec"]["resources"] = resources
    return parse_run(doc, "test")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_strictly(version: str) -> None:
    run = seed_run(
        queueName="team-a",
        infer={
            "parallelism": 2,
            "nodeSelector": {"gpu": "a100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "batch-low",
            "requests": {"memory": "8Gi"},
        },
    )
    for obj in plan_objects(run, "uid-1", "ml", "framesift:test", VIDEOS, generation=1):
        kubernetes_validate.validate(obj, version, strict=True)


def test_inference_is_one_indexed_job_that_fails_indexes_not_the_run() -> None:
    job = build_job(seed_run(infer={"parallelism": 2}), "uid-1", "ml", "infer", "img", 3)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 3 and spec["parallelism"] == 2
    assert spec["backoffLimitPerIndex"] == 1 and spec["maxFailedIndexes"] == 3
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailIndex",
        "onExitCodes": {"containerName": "infer", "operator": "In", "values": [3]},
    }
    assert rules[1]["action"] == "Ignore" and rules[1]["onPodConditions"] == [
        {"type": "DisruptionTarget", "status": "True"}
    ]
    container = spec["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["command"][:3] == ["framesift", "job", "infer"]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]


def test_pods_run_locked_down() -> None:
    job = build_job(seed_run(), "uid-1", "ml", "convert", "img", 3)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert "resources" not in container  # no GPU outside inference unless asked


def test_kueue_jobs_are_suspended_and_labelled() -> None:
    run = seed_run(queueName="team-a")
    for stage in ("infer", "convert", "select", "export"):
        job = build_job(run, "uid-1", "ml", stage, "img", 3)
        assert job["spec"]["suspend"] is True
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert "suspend" not in build_job(seed_run(), "uid-1", "ml", "infer", "img", 3)["spec"]


def test_children_are_owned_labelled_and_named_deterministically() -> None:
    objects = plan_objects(seed_run(), "uid-1", "ml", "img", VIDEOS)
    assert [o["metadata"]["name"] for o in objects] == [
        "pedestrians-config",
        "pedestrians-list",
        "pedestrians-infer",
        "pedestrians-convert",
        "pedestrians-select",
        "pedestrians-export",
    ]
    for obj in objects:
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref["uid"] == "uid-1" and ref["kind"] == "ActiveLearningRun" and ref["controller"] is True
        assert obj["metadata"]["labels"]["framesift.dev/run"] == "pedestrians"
    assert len(child_name("x" * 63, "convert")) <= 63
    assert child_name("x" * 63, "convert") != child_name("x" * 62 + "y", "convert")


def test_configmap_holds_the_spec_only_and_no_secret_values() -> None:
    cm = build_configmap(seed_run(), "uid-1", "ml", generation=4)
    assert list(cm["data"]) == ["run.yaml"]  # the video list lives in the output store
    assert cm["metadata"]["annotations"]["framesift.dev/spec-generation"] == "4"
    snapshot = parse_run(yaml.safe_load(cm["data"]["run.yaml"]), "cm")
    assert snapshot.spec == seed_run().spec


def test_runs_without_selection_stop_after_convert(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "examples" / "pedestrians.yaml").read_text())
    del doc["spec"]["selection"]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(doc))
    objects = plan_objects(load_run(tmp_path / "run.yaml"), "u", "ml", "img", VIDEOS)
    assert [o["metadata"]["labels"]["framesift.dev/stage"] for o in objects] == ["config", "list", "infer", "convert"]


def test_plan_prints_what_the_operator_would_create(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.helpers import manifest, synthetic_video, write_manifest

    for name in ("b.mp4", "a.mp4", "notes.txt"):
        if name.endswith(".mp4"):
            synthetic_video(tmp_path / name, frames=3, codec="libx264")
        else:
            (tmp_path / name).write_text("not a video")
    selection = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    run_file = write_manifest(tmp_path / "run.yaml", manifest("planned", str(tmp_path), "out/", selection=selection))
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("resources: {queueName: team-gpus, infer: {nodeSelector: {gpu: a100}}}\n")
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "framesift"),
            "plan",
            str(run_file),
            "--image",
            "img:1",
            "--namespace",
            "vision",
            "--defaults",
            str(defaults),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job", "Job", "Job", "Job", "Job"]
    assert docs[1]["metadata"]["name"] == "planned-list"
    infer = docs[2]
    assert infer["spec"]["completions"] == 2 and infer["metadata"]["namespace"] == "vision"
    assert infer["spec"]["template"]["spec"]["nodeSelector"] == {"gpu": "a100"}
    assert all(d["spec"]["suspend"] is True for d in docs[1:])
    for doc in docs:
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


# Pod Security Standards, "restricted" profile (kubernetes.io/docs/concepts/security/pod-security-standards),
# rule by rule, for the fields framesift's pods set.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict) -> list[str]:
    bad = []
    spec = pod
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            bad.append(f"{key} must be unset or false")
    pod_ctx = spec.get("securityContext") or {}
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            bad.append(f"volume {volume['name']}: type {kinds} not allowed")
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        ctx = container.get("securityContext") or {}
        name = container["name"]
        if ctx.get("privileged"):
            bad.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation must be false")
        if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
            bad.append(f"{name}: runAsNonRoot must be true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            bad.append(f"{name}: runAsUser must not be 0")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: only NET_BIND_SERVICE may be added")
        if container.get("ports") and any(p.get("hostPort") for p in container["ports"]):
            bad.append(f"{name}: hostPort")
    return bad


def test_every_pod_passes_the_restricted_pod_security_standard() -> None:
    run = seed_run(queueName="q", infer={"gpus": 1, "priorityClassName": "batch"})
    pods = [o["spec"]["template"]["spec"] for o in plan_objects(run, "u", "ml", "img", VIDEOS) if o["kind"] == "Job"]
    assert len(pods) == 5
    for pod in pods:
        assert restricted_violations(pod) == []
    # the checker catches what it should
    broken = json.loads(json.dumps(pods[0]))
    broken["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    broken["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert len(restricted_violations(broken)) == 2


def test_stage_pods_report_through_termination_messages_and_mount_secrets_by_name() -> None:
    for job in (o for o in plan_objects(seed_run(), "u", "ml", "img", VIDEOS) if o["kind"] == "Job"):
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["terminationMessagePath"] == "/dev/termination-log"
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["FRAMESIFT_TERMINATION_LOG"] == "/dev/termination-log"
        assert container["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
        assert "--video-list" not in container["command"]
    list_job = build_job(seed_run(), "u", "ml", "list", "img", 3)
    rules = list_job["spec"]["podFailurePolicy"]["rules"]
    codes = [ExitCode.USAGE, ExitCode.GAVE_UP]
    exits = {"containerName": "list", "operator": "In", "values": codes}
    assert rules[0] == {"action": "FailJob", "onExitCodes": exits}


def test_plan_without_credentials_says_which_numbers_are_placeholders() -> None:
    import os
    import subprocess
    import sys

    exe = str(Path(sys.executable).parent / "framesift")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance-metadata lookups for credentials
    plan = subprocess.run(
        [exe, "plan", str(REPO / "examples" / "pedestrians.yaml")], capture_output=True, text=True, env=env
    )
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.startswith("# PLACEHOLDER: could not list spec.input")
    docs = [d for d in yaml.safe_load_all(plan.stdout) if d]
    infer = next(d for d in docs if d["metadata"]["name"] == "pedestrians-infer")
    assert infer["spec"]["completions"] == 1
    sized = subprocess.run(
        [exe, "plan", str(REPO / "examples" / "demo.yaml"), "--videos", "7"], capture_output=True, text=True, env=env
    )
    assert sized.returncode == 0, sized.stderr
    infer = next(d for d in yaml.safe_load_all(sized.stdout) if d and d["metadata"]["name"] == "demo-infer")
    assert infer["spec"]["completions"] == 7
    assert "spec.input.uri 'videos/' is a path on this machine" in sized.stderr  # relative paths cannot work in pods
    helptext = subprocess.run([exe, "plan", "--help"], capture_output=True, text=True).stdout
    assert "--image" in helptext and "the image the stage Jobs run" in helptext and "namespace of the run" in helptext


def test_max_failed_videos_bounds_the_inference_jobs_failed_indexes() -> None:
    doc = yaml.safe_load((REPO / "examples" / "pedestrians.yaml").read_text())
    for value, expected in ((None, 30), (4, 4), ("10%", 3), (0, 0), (99, 30)):
        doc["spec"]["input"]["maxFailedVideos"] = value
        job = build_job(parse_run(doc, "t"), "u", "ml", "infer", "img", 30)
        assert job["spec"]["maxFailedIndexes"] == expected


def test_a_fleet_run_stays_within_ten_thousand_indexes() -> None:
    from framesift.api.shards import MAX_INDEXES

    job = build_job(seed_run(), "u", "ml", "infer", "img", 50_000)
    assert job["spec"]["completions"] == 10_000 <= MAX_INDEXES  # 5 videos per index
    job = build_job(seed_run(), "u", "ml", "infer", "img", 25_001)
    assert job["spec"]["completions"] == 8334
    job = build_job(seed_run(infer={"videosPerPod": 16}), "u", "ml", "infer", "img", 100)
    assert job["spec"]["completions"] == 7 and job["spec"]["maxFailedIndexes"] == 7
