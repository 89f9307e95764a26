"""An in-memory stand-in for `operator.kube.Cluster`: the same calls, plain dicts, every write
recorded. The fast reconciler tests and `framesift bench operator` run the real Reconciler on it."""

from __future__ import annotations

import copy
import json
from typing import Any

from framesift.operator.manifests import LABEL_RUN, LABEL_STAGE


def merge_patch(status: dict[str, Any], patch: dict[str, Any]) -> None:
    """A JSON merge patch of a status, one level deep: null removes the key."""
    for key, value in patch.items():
        if value is None:
            status.pop(key, None)
        else:
            status[key] = copy.deepcopy(value)


class MemoryCluster:
    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, namespace, name)
        self.events: list[tuple[str, str, str]] = []
        self.status_patches: list[dict[str, Any]] = []
        self.pods: dict[str, list[dict[str, Any]]] = {}  # job name → its pods
        self.pod_reads: list[str] = []
        self.logs: dict[str, str] = {}  # pod name → its log
        self.deleted: list[str] = []
        self.schedules: dict[tuple[str, str], dict[str, Any]] = {}

    # ----- what the Reconciler calls -----

    def get_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        run = self.runs.get((namespace, name))
        return copy.deepcopy(run) if run else None

    def list_runs(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(r) for r in self.runs.values()]

    def patch_run_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.status_patches.append(copy.deepcopy(patch))
        merge_patch(self.runs[(namespace, name)].setdefault("status", {}), patch)

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get(("ConfigMap", namespace, name)))

    def jobs_of(self, namespace: str, run_name: str, run_uid: str) -> dict[str, dict[str, Any]]:
        return {
            job["metadata"]["labels"][LABEL_STAGE]: copy.deepcopy(job)
            for (kind, ns, _), job in self.objects.items()
            if kind == "Job" and ns == namespace and job["metadata"]["labels"][LABEL_RUN] == run_name
        }

    def create(self, obj: dict[str, Any]) -> bool:
        key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        if key in self.objects:
            return False
        self.objects[key] = copy.deepcopy(obj)
        return True

    def pods_of_job(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        self.pod_reads.append(job_name)
        return copy.deepcopy(self.pods.get(job_name, []))

    def pod_log(self, namespace: str, pod_name: str, tail_lines: int) -> str:
        return "\n".join(self.logs.get(pod_name, "").splitlines()[-tail_lines:])

    def delete_job(self, namespace: str, name: str) -> None:
        self.objects.pop(("Job", namespace, name), None)
        self.deleted.append(name)

    def post_event(self, run: dict[str, Any], kind: str, reason: str, message: str) -> None:
        self.events.append((kind, str(reason), message))

    def get_schedule(self, namespace: str, name: str) -> dict[str, Any] | None:
        schedule = self.schedules.get((namespace, name))
        return copy.deepcopy(schedule) if schedule else None

    def list_schedules(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(s) for s in self.schedules.values()]

    def patch_schedule_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        merge_patch(self.schedules[(namespace, name)].setdefault("status", {}), patch)

    def runs_of_schedule(self, namespace: str, schedule: str, schedule_uid: str) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(r)
            for (ns, _), r in self.runs.items()
            if ns == namespace and (r["metadata"].get("labels") or {}).get("framesift.dev/schedule") == schedule
        ]

    def create_run(self, doc: dict[str, Any]) -> bool:
        key = (doc["metadata"]["namespace"], doc["metadata"]["name"])
        if key in self.runs:
            return False
        self.runs[key] = copy.deepcopy(doc)
        return True

    def delete_run(self, namespace: str, name: str) -> None:
        self.runs.pop((namespace, name), None)

    # ----- what a test or a benchmark does to it -----

    def apply(self, doc: dict[str, Any], namespace: str, uid: str, generation: int = 1) -> None:
        """Create or update a run (its status is kept, as the API server keeps it)."""
        body = copy.deepcopy(doc)
        body["metadata"].update({"namespace": namespace, "uid": uid, "generation": generation})
        old = self.runs.get((namespace, doc["metadata"]["name"]))
        if old and "status" in old:
            body["status"] = old["status"]
        self.runs[(namespace, doc["metadata"]["name"])] = body

    def add_pod(
        self, job_name: str, container: str, phase: str, message: str, exit_code: int = 0, index: int | None = None
    ) -> None:
        """A finished pod of a Job, with its termination message, labelled as the Job controller does."""
        pods = self.pods.setdefault(job_name, [])
        labels = {"batch.kubernetes.io/job-name": job_name}
        if index is not None:
            labels["batch.kubernetes.io/job-completion-index"] = str(index)
        terminated = {"exitCode": exit_code, "message": message}
        pods.append(
            {
                "metadata": {"name": f"{job_name}-{len(pods)}", "labels": labels},
                "status": {
                    "phase": phase,
                    "containerStatuses": [{"name": container, "state": {"terminated": terminated}}],
                },
            }
        )

    def finish_job(self, namespace: str, job_name: str, summary: dict[str, Any], **status: Any) -> None:
        """A Job completes; its pod leaves `summary` as termination message."""
        job = self.objects[("Job", namespace, job_name)]
        job["status"] = {"conditions": [{"type": "Complete", "status": "True"}], **status}
        stage = job["metadata"]["labels"][LABEL_STAGE]
        self.add_pod(job_name, stage, "Succeeded", json.dumps(summary))
