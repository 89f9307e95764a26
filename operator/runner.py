"""One reconcile of one run: read what exists, `decide`, create what is missing, publish status.

Level-triggered and idempotent: it may run any number of times, from any event, after any
restart. The operator reads no Secret and no storage: everything that needs the run's
credentials runs in a Job of the run (the Secret mounted there by reference), and each stage
pod leaves a small JSON summary as its termination message, which is all the operator reads
(the video count, a failure's cause, the selection's counts and URIs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from framesift.api.defaults import apply_defaults
from framesift.api.errors import ManifestError
from framesift.api.manifest import parse_run, safe_load
from framesift.api.models import ActiveLearningRun
from framesift.api.shards import MAX_FAILED_VIDEOS_IN_STATUS, index_count, videos_per_index
from framesift.api.vocabulary import (
    ANNOTATION_SPEC_GENERATION,
    LIGHTLYONE_STATUS_MARKER,
    PIPELINE,
    TERMINAL_PHASES,
    Condition,
    Reason,
    stages_for,
)
from framesift.jobs.summary import read_summary
from framesift.operator import metrics
from framesift.operator.kube import Cluster
from framesift.operator.manifests import build_configmap, build_job, build_worker_job, child_name
from framesift.operator.reconcile import (
    WORKER,
    Decision,
    LightlyOneView,
    decide,
    fail,
    infer_progress,
    job_condition,
    listed_videos,
    set_condition,
)

log = logging.getLogger(__name__)
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


@dataclass
class Snapshot:
    """The run as its Jobs see it: the spec frozen in the ConfigMap when the run started."""

    run: ActiveLearningRun
    generation: int | None


def _snapshot(configmap: dict[str, Any]) -> Snapshot:
    data = configmap.get("data") or {}
    run = parse_run(safe_load(data["run.yaml"]), f"ConfigMap {configmap['metadata']['name']}")
    generation = (configmap["metadata"].get("annotations") or {}).get(ANNOTATION_SPEC_GENERATION)
    return Snapshot(run, int(generation) if generation else None)


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        state = (container.get("state") or {}).get("terminated")
        if state:
            return dict(state)
    return {}


def _creation_order(pod: dict[str, Any]) -> str:
    return str(pod["metadata"].get("creationTimestamp") or "") + pod["metadata"]["name"]


def pod_summary(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The summary a stage left: its succeeded pod's termination message, else the newest
    failed pod's (which says why)."""
    finished = [p for p in pods if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")]
    for phase in ("Succeeded", "Failed"):
        for pod in sorted((p for p in finished if p["status"]["phase"] == phase), key=_creation_order, reverse=True):
            summary = read_summary(_terminated(pod).get("message"))
            if summary is not None:
                return summary
    return None


def failed_indexes(pods: list[dict[str, Any]], wanted: set[int]) -> dict[int, dict[str, str]]:
    """Failed inference indexes → {name, reason}, from the summary each index's last pod left."""
    out: dict[int, dict[str, str]] = {}
    for pod in sorted(pods, key=_creation_order):
        index = (pod["metadata"].get("labels") or {}).get(INDEX_LABEL) or (
            pod["metadata"].get("annotations") or {}
        ).get(INDEX_LABEL)
        if index is None or not str(index).isdigit() or int(index) not in wanted:
            continue
        state = _terminated(pod)
        summary = read_summary(state.get("message")) or {}
        reason = summary.get("reason") or state.get("reason") or ""
        if state.get("exitCode") == 137 and not summary:
            reason = "killed (out of memory?)"
        chunk = summary.get("videos")
        name = summary.get("video") or (f"videos {chunk[0]}-{chunk[1]} (index {index})" if chunk else f"index {index}")
        out[int(index)] = {"name": str(name), "reason": str(reason)}
    return out


def status_line(log_tail: str) -> dict[str, Any]:
    """The last `FRAMESIFT_LIGHTLYONE {json}` line of a select pod's log ({} when none)."""
    for line in reversed(log_tail.splitlines()):
        if line.startswith(LIGHTLYONE_STATUS_MARKER):
            summary = read_summary(line[len(LIGHTLYONE_STATUS_MARKER) :])
            if summary is not None:
                return summary
    return {}


def describe_pod(pods: list[dict[str, Any]]) -> str:
    """What the newest pod is doing, in `kubectl get pod` words: Pending, ImagePullBackOff
    (with the kubelet's message), Running, a crash (exit code)..."""
    if not pods:
        return "not created yet (is its Job suspended, waiting for Kueue, or out of quota?)"
    pod = sorted(pods, key=_creation_order)[-1]
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if "waiting" in state:
            waiting = state["waiting"]
            return f"{waiting.get('reason', 'Waiting')}: {waiting.get('message', '')}".rstrip(": ")
        if "terminated" in state:
            return f"exited {state['terminated'].get('exitCode')} ({state['terminated'].get('reason', '')})"
        if "running" in state:
            return f"Running (restarts: {container.get('restartCount', 0)})"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"Pending, not scheduled: {condition.get('message', '')}"
    return str(status.get("phase") or "Pending")


class Reconciler:
    def __init__(self, cluster: Cluster, image: str, defaults: dict[str, Any] | None = None):
        self.cluster = cluster
        self.image = image
        self.defaults = defaults

    def reconcile(self, namespace: str, name: str) -> str | None:
        """Move one run forward as far as it can go now; returns its phase."""
        body = self.cluster.get_run(namespace, name)
        if body is None:
            return None
        status = dict(body.get("status") or {})
        if status.get("phase") in TERMINAL_PHASES:
            metrics.observe_phase(namespace, name, status["phase"])
            return str(status["phase"])
        # each pass creates at most one child (the ConfigMap, then a stage's Job): bounded by them all
        phase: str | None = None
        for _ in range(len(PIPELINE) + 2):
            phase, progressed = self._step(body, namespace, name)
            if not progressed:
                return phase
            body = self.cluster.get_run(namespace, name) or body
        return phase

    def _step(self, body: dict[str, Any], namespace: str, name: str) -> tuple[str | None, bool]:
        meta = body["metadata"]
        uid = meta.get("uid", "")
        generation = meta.get("generation")
        status = dict(body.get("status") or {})
        try:
            document = apply_defaults({k: v for k, v in body.items() if k != "status"}, self.defaults)
            current = parse_run(document, f"ActiveLearningRun {name}")
        except ManifestError as err:
            return self._invalid(body, status, generation, Reason.INVALID_SPEC, "; ".join(err.problems)), False
        configmap = self.cluster.get_configmap(namespace, child_name(name, "config"))
        snapshot = _snapshot(configmap) if configmap else None
        run = snapshot.run if snapshot else current
        if (
            snapshot
            and generation is not None
            and snapshot.generation is not None
            and generation != snapshot.generation
        ):
            status = self._spec_changed(body, status, generation)
        jobs = self.cluster.jobs_of(namespace, name, uid)
        metrics.observe_jobs(jobs)
        summaries, failed_videos = self._pod_reports(namespace, run, jobs, status)
        stages = stages_for(run.spec.selection is not None)
        total = listed_videos(status, summaries) or 0
        limit = run.spec.input.failed_videos_limit(total)
        lightlyone = self._lightlyone(namespace, run, jobs, summaries)
        per_index = videos_per_index(run.spec.resources.infer.videos_per_pod, total)
        decision = decide(
            stages,
            status,
            generation,
            configmap is not None,
            jobs,
            summaries,
            failed_videos,
            limit,
            lightlyone,
            per_index,
        )
        if not decision.status and not decision.create:
            return status.get("phase"), False

        progressed = False
        for item in decision.create:
            if item == "config":
                progressed |= self.cluster.create(build_configmap(run, uid, namespace, generation))
                log.info("run %s/%s: ConfigMap created", namespace, name)
            else:
                image = run.spec.image or self.image
                job = (
                    build_worker_job(run, uid, namespace, decision.worker_id or "")
                    if item == WORKER
                    else build_job(run, uid, namespace, item, image, decision.videos or 0)
                )
                created = self.cluster.create(job)
                progressed |= created and item != WORKER  # the Worker Job moves no stage on
                if created:
                    log.info("run %s/%s: %s Job created", namespace, name, item)
        for item in decision.delete:
            self.cluster.delete_job(namespace, child_name(name, item))
            log.info("run %s/%s: %s Job deleted (its select Job has ended)", namespace, name, item)
        self._publish(body, decision)
        return decision.status.get("phase"), progressed

    # ----- helpers -----

    def _lightlyone(
        self,
        namespace: str,
        run: ActiveLearningRun,
        jobs: dict[str, dict[str, Any]],
        summaries: dict[str, dict[str, Any]],
    ) -> LightlyOneView | None:
        """For engine lightlyone: the select pod's newest report (its termination message once it
        ended, else the last status line of its log) and what the Worker's pod is doing."""
        if run.spec.selector.engine != "lightlyone" or "select" not in jobs:
            return None
        select = jobs["select"]
        report: dict[str, Any] = {}
        pods = self.cluster.pods_of_job(namespace, select["metadata"]["name"])
        if job_condition(select, "Complete") or job_condition(select, "Failed"):
            summary = summaries.get("select") or pod_summary(pods) or {}
            summaries["select"] = summary
            report = dict(summary.get("lightlyone") or {})
        else:
            running = sorted(
                (p for p in pods if (p.get("status") or {}).get("phase") == "Running"), key=_creation_order
            )
            if running:
                report = status_line(self.cluster.pod_log(namespace, running[-1]["metadata"]["name"], 50))
        worker = jobs.get(WORKER)
        worker_pod = None
        if worker is not None:
            worker_pod = describe_pod(self.cluster.pods_of_job(namespace, worker["metadata"]["name"]))
        return LightlyOneView(report, worker_pod)

    def _pod_reports(
        self, namespace: str, run: ActiveLearningRun, jobs: dict[str, dict[str, Any]], status: dict[str, Any]
    ) -> tuple[dict[str, dict[str, Any]], dict[int, dict[str, str]]]:
        """Read stage pods' termination messages, only where the next decision needs them: the
        list Job's count before inference starts, a failed Job's error, the export's results,
        and the names of newly failed inference indexes."""
        summaries: dict[str, dict[str, Any]] = {}
        for stage, job in jobs.items():
            if stage == "infer":
                continue
            finished = job_condition(job, "Complete") or job_condition(job, "Failed")
            needed = (
                job_condition(job, "Failed")
                or (stage == "list" and "infer" not in jobs)
                or stage == "export"
                or (stage == "convert" and "select" not in jobs)  # the run's exact failed videos, once
            )
            if finished and needed:
                summary = pod_summary(self.cluster.pods_of_job(namespace, job["metadata"]["name"]))
                if summary is not None:
                    summaries[stage] = summary
        failed_videos: dict[int, dict[str, str]] = {}
        infer = jobs.get("infer")
        if infer is not None:
            known = (status.get("videos") or {}).get("failedVideos") or []
            total = int((status.get("videos") or {}).get("total") or 0)
            per_index = videos_per_index(run.spec.resources.infer.videos_per_pod, total)
            progress = infer_progress(infer, index_count(total, per_index))
            wanted = set(progress.failed.first(MAX_FAILED_VIDEOS_IN_STATUS))
            if wanted and len(known) != len(wanted):
                pods = self.cluster.pods_of_job(namespace, infer["metadata"]["name"])
                failed_videos = failed_indexes(pods, wanted)
            elif wanted:  # already named in status: keep those names without another read
                failed_videos = dict(zip(sorted(wanted), known, strict=False))
        return summaries, failed_videos

    def _publish(self, body: dict[str, Any], decision: Decision) -> None:
        meta = body["metadata"]
        new = decision.status
        current = body.get("status") or {}
        if new != current:
            # a merge patch: keys that are gone must be sent as null to be removed
            patch = {**new, **{k: None for k in current if k not in new}}
            self.cluster.patch_run_status(meta["namespace"], meta["name"], patch)
        for kind, reason, message in decision.events:
            log.info("run %s/%s: %s %s: %s", meta["namespace"], meta["name"], kind, reason, message)
            self.cluster.post_event(body, kind, reason, message)
            metrics.observe_reason(reason)
        metrics.observe_phase(meta["namespace"], meta["name"], new.get("phase"))

    def _invalid(
        self, body: dict[str, Any], status: dict[str, Any], generation: int | None, reason: Reason, message: str
    ) -> str:
        decision = fail(status, reason, message, generation)
        self._publish(body, decision)
        return str(decision.status["phase"])

    def _spec_changed(self, body: dict[str, Any], status: dict[str, Any], generation: int) -> dict[str, Any]:
        conditions = status.get("conditions", [])
        if not any(
            c.get("type") == Condition.SPEC_CHANGE_IGNORED and c.get("observedGeneration") == generation
            for c in conditions
        ):
            message = (
                "the spec changed after the run started; the run goes on with the spec it started with "
                "(create a new ActiveLearningRun to run the new spec)"
            )
            status = {
                **status,
                "conditions": set_condition(
                    conditions,
                    Condition.SPEC_CHANGE_IGNORED,
                    "True",
                    Reason.SPEC_CHANGED_AFTER_START,
                    message,
                    generation,
                ),
            }
            self.cluster.post_event(body, "Warning", Reason.SPEC_CHANGE_IGNORED, message)
        return status


__all__ = ["Reconciler", "failed_indexes", "pod_summary"]
