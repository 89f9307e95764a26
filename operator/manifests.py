"""Every object the operator creates, as pure functions of the run (no cluster access).

`framesift plan` prints these same objects, so what reviewers read is what the operator makes.
Names are deterministic (`<run>-<stage>`), every child carries an ownerReference to the run
(garbage collection) and the labels `framesift.dev/run` and `framesift.dev/stage`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from framesift.api.manifest import run_to_document
from framesift.api.models import API_VERSION, KIND, ActiveLearningRun, StageResources
from framesift.api.shards import index_count, videos_per_index
from framesift.api.vocabulary import (
    ANNOTATION_SPEC_GENERATION,
    TERMINATION_LOG,
    TERMINATION_LOG_ENV,
    ExitCode,
    stages_for,
)

LABEL_RUN = "framesift.dev/run"
LABEL_STAGE = "framesift.dev/stage"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"
CONFIG_MOUNT = "/etc/framesift"
RUN_FILE = f"{CONFIG_MOUNT}/run.yaml"
RUN_AS_USER = 10001
POD_SECURITY = {  # Pod Security Standard "restricted", for every pod framesift creates
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "runAsGroup": RUN_AS_USER,
    "fsGroup": RUN_AS_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
GPU_RESOURCE = "nvidia.com/gpu"


STAGE_RESOURCES = {"list": "convert"}  # the list Job is small and CPU-only, like convert
WORKER_STAGE = "worker"  # the LightlyOne Worker Job's stage label (engine lightlyone)
WORKER_ID_PLACEHOLDER = "<the id the select Job registers>"  # what `framesift plan` shows


def child_name(run_name: str, stage: str) -> str:
    """`<run>-<stage>`, shortened with a hash when the run's name is long (63-char names;
    Job names also label their pods, so they stay ≤ 63)."""
    name = f"{run_name}-{stage}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha1(run_name.encode()).hexdigest()[:8]
    return f"{run_name[: 63 - len(stage) - 10]}-{digest}-{stage}"


def labels(run_name: str, stage: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "framesift",
        "app.kubernetes.io/managed-by": "framesift-operator",
        LABEL_RUN: run_name,
        LABEL_STAGE: stage,
    }


def owner_reference(run_name: str, run_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": run_name,
        "uid": run_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(run: ActiveLearningRun, run_uid: str, namespace: str, stage: str) -> dict[str, Any]:
    return {
        "name": child_name(run.metadata.name, stage),
        "namespace": namespace,
        "labels": labels(run.metadata.name, stage),
        "ownerReferences": [owner_reference(run.metadata.name, run_uid)],
    }


def build_configmap(run: ActiveLearningRun, run_uid: str, namespace: str, generation: int | None) -> dict[str, Any]:
    """The run's spec as the Jobs read it, frozen when the run starts. No secret values: the
    spec holds only Secret names. (The video list lives in the output store, written by the
    list Job: it grows with the input, and API objects must stay small.)"""
    document = run_to_document(run)
    document["metadata"] = {"name": run.metadata.name, "namespace": namespace}
    meta = _meta(run, run_uid, namespace, "config")
    meta["annotations"] = {
        ANNOTATION_SPEC_GENERATION: str(generation if generation is not None else 0),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"run.yaml": yaml.safe_dump(document, sort_keys=False)},
    }


def _secret_names(run: ActiveLearningRun) -> list[str]:
    names = []
    for location in (run.spec.input, run.spec.output):
        if location.credentials and location.credentials.secret_name not in names:
            names.append(location.credentials.secret_name)
    return names


def _resources(stage_resources: StageResources, default_gpus: int) -> dict[str, Any]:
    requests = dict(stage_resources.requests)
    limits = dict(stage_resources.limits)
    gpus = stage_resources.gpus if stage_resources.gpus is not None else default_gpus
    if gpus:
        limits[GPU_RESOURCE] = str(gpus)  # extended resources: the limit is the request
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _pod_spec(
    run: ActiveLearningRun, stage: str, image: str, stage_resources: StageResources, config_name: str, default_gpus: int
) -> dict[str, Any]:
    command = ["framesift", "job", stage, "--run", RUN_FILE, "--no-progress"]
    container: dict[str, Any] = {
        "name": stage,
        "image": image,
        "command": command,
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "FRAMESIFT_CACHE", "value": "/tmp/framesift"},
            {"name": "YOLO_CONFIG_DIR", "value": "/tmp/ultralytics"},
            {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
            {"name": TERMINATION_LOG_ENV, "value": TERMINATION_LOG},
        ],
        "envFrom": [{"secretRef": {"name": name}} for name in _secret_names(run)],
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "terminationMessagePath": TERMINATION_LOG,  # the stage's JSON summary: all the operator reads
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if stage == "select" and run.spec.selector.engine == "lightlyone":
        container["env"].append(_token_env(run))
    resources = _resources(stage_resources, default_gpus)
    if resources:
        container["resources"] = resources
    if not container["envFrom"]:
        del container["envFrom"]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": config_name}}, {"name": "tmp", "emptyDir": {}}],
        "securityContext": dict(POD_SECURITY),
        "automountServiceAccountToken": False,
    }
    return _place(spec, stage_resources)


def _place(pod_spec: dict[str, Any], resources: StageResources) -> dict[str, Any]:
    """Node selector, tolerations and priority class of a stage's pods."""
    if resources.node_selector:
        pod_spec["nodeSelector"] = dict(resources.node_selector)
    if resources.tolerations:
        pod_spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in resources.tolerations]
    if resources.priority_class_name:
        pod_spec["priorityClassName"] = resources.priority_class_name
    return pod_spec


def _token_env(run: ActiveLearningRun) -> dict[str, Any]:
    """LIGHTLY_TOKEN by Secret reference: the kubelet reads it, never the operator."""
    ref = run.spec.selector.token
    assert ref is not None, "validated: engine lightlyone has a token"
    return {"name": "LIGHTLY_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def build_worker_job(run: ActiveLearningRun, run_uid: str, namespace: str, worker_id: str) -> dict[str, Any]:
    """The LightlyOne Worker of the run, as a Job (so Kueue's quota applies to it like to the
    rest): `docker run --shm-size --gpus -e LIGHTLY_TOKEN -e LIGHTLY_WORKER_ID lightly/worker`,
    translated. The Worker exits when its job is done (shutdown_when_job_finished, which the
    select Job always sends), so the Job ends with the LightlyOne run; a retry would not help a
    run the Worker already took (it ends CRASHED), so there is none."""
    selector = run.spec.selector
    resources = run.spec.resources.select
    env = [_token_env(run), {"name": "LIGHTLY_WORKER_ID", "value": worker_id}]
    if selector.server_location:
        env.append({"name": "LIGHTLY_SERVER_LOCATION", "value": selector.server_location})
    container: dict[str, Any] = {
        "name": "worker",
        "image": selector.worker_image,
        "env": env,
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    limits = _resources(resources, default_gpus=1)  # the Worker embeds and trains: a GPU, as --gpus all
    if limits:
        container["resources"] = limits
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        # --shm-size: the Worker's processes share memory; Kubernetes' default /dev/shm is 64 MiB
        "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": selector.shm_size}}],
        "securityContext": dict(POD_SECURITY),
        "automountServiceAccountToken": False,
    }
    _place(pod_spec, resources)
    meta = _meta(run, run_uid, namespace, WORKER_STAGE)
    spec: dict[str, Any] = {
        "template": {"metadata": {"labels": labels(run.metadata.name, WORKER_STAGE)}, "spec": pod_spec},
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": 0,
    }
    queue = run.spec.resources.queue_name
    if queue:
        meta["labels"][LABEL_QUEUE] = queue
        spec["suspend"] = True
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def _max_failed_indexes(run: ActiveLearningRun, n_videos: int) -> int:
    limit = run.spec.input.failed_videos_limit(n_videos)
    return n_videos if limit is None else min(n_videos, limit)


def build_job(
    run: ActiveLearningRun, run_uid: str, namespace: str, stage: str, image: str, n_videos: int
) -> dict[str, Any]:
    """The Job of one stage. Inference is ONE Indexed Job, an index per video: a broken video
    fails its own index (exit 3 fails it at once, node disruptions do not count), never the run."""
    resources = getattr(run.spec.resources, STAGE_RESOURCES.get(stage, stage))
    meta = _meta(run, run_uid, namespace, stage)
    pod_labels = labels(run.metadata.name, stage)
    queue = run.spec.resources.queue_name
    if queue:
        meta["labels"][LABEL_QUEUE] = queue
    config_name = child_name(run.metadata.name, "config")
    pod_spec = _pod_spec(run, stage, image, resources, config_name, default_gpus=1 if stage == "infer" else 0)
    spec: dict[str, Any] = {"template": {"metadata": {"labels": pod_labels}, "spec": pod_spec}}
    if stage == "infer":
        per_index = videos_per_index(resources.videos_per_pod, n_videos)
        indexes = index_count(n_videos, per_index)
        spec.update(
            {
                "completionMode": "Indexed",
                "completions": indexes,
                "parallelism": min(indexes, resources.parallelism or 4),
                "backoffLimitPerIndex": resources.backoff_limit_per_index
                if resources.backoff_limit_per_index is not None
                else 1,
                # each video may fail on its own up to spec.input.maxFailedVideos; past it the Job stops.
                # (Chunks record their bad videos and succeed: their index fails only for pod-level trouble.)
                "maxFailedIndexes": _max_failed_indexes(run, n_videos) if per_index == 1 else indexes,
                "podFailurePolicy": {
                    "rules": [
                        {
                            "action": "FailIndex",
                            "onExitCodes": {
                                "containerName": "infer",
                                "operator": "In",
                                "values": [ExitCode.BAD_INPUT.value],
                            },
                        },
                        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    ]
                },
            }
        )
    else:
        spec.update(
            {
                "completions": 1,
                "parallelism": 1,
                "backoffLimit": resources.backoff_limit_per_index
                if resources.backoff_limit_per_index is not None
                else 2,
                "podFailurePolicy": {
                    "rules": [
                        # a bad manifest or input (exit 2), or a permanent answer from LightlyOne
                        # (exit 4), fails the same way on every retry
                        {
                            "action": "FailJob",
                            "onExitCodes": {
                                "containerName": stage,
                                "operator": "In",
                                "values": [ExitCode.USAGE.value, ExitCode.GAVE_UP.value],
                            },
                        },
                        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    ]
                },
            }
        )
    if resources.active_deadline_seconds:
        spec["activeDeadlineSeconds"] = resources.active_deadline_seconds
    if queue:
        spec["suspend"] = True  # Kueue admits (unsuspends) it; the operator never does
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def plan_objects(
    run: ActiveLearningRun,
    run_uid: str,
    namespace: str,
    image: str,
    n_videos: int,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """Every object the operator creates for the run, in creation order (the inference Job
    sized for `n_videos`, which the list Job finds in a real run)."""
    objects = [build_configmap(run, run_uid, namespace, generation)]
    objects += [
        build_job(run, run_uid, namespace, stage.name, run.spec.image or image, n_videos)
        for stage in stages_for(run.spec.selection is not None)
    ]
    if run.spec.selector.engine == "lightlyone" and run.spec.selection is not None:
        objects.append(build_worker_job(run, run_uid, namespace, WORKER_ID_PLACEHOLDER))
    return objects
