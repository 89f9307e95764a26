"""One reconcile of one run: read what exists, `decide`, create what is missing, publish status.

Level-triggered and idempotent: it may run any number of times, from any event, after any
restart. Secrets referenced by the run are read into memory to list the input and to read the
run's results; their values are never written to status, events, ConfigMaps or logs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from framesift.api.defaults import apply_defaults
from framesift.api.errors import ManifestError
from framesift.api.manifest import parse_run
from framesift.api.models import ActiveLearningRun, Location
from framesift.api.vocabulary import (
    ANNOTATION_SPEC_GENERATION,
    PIPELINE,
    TERMINAL_PHASES,
    Condition,
    Reason,
    stages_for,
)
from framesift.jobs.context import InputError, RunContext, video_list_document
from framesift.jobs.select import SelectorUnavailable, check_engine, per_video_counts
from framesift.jobs.storage import Storage, StorageError, open_storage
from framesift.jobs.video import list_videos
from framesift.operator import metrics
from framesift.operator.kube import Cluster
from framesift.operator.manifests import build_configmap, build_job, child_name
from framesift.operator.reconcile import Decision, decide, fail, set_condition

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """The run as its Jobs see it: the spec frozen in the ConfigMap when the run started."""

    run: ActiveLearningRun
    videos: list[dict[str, Any]]
    generation: int | None


def _credentials(cluster: Cluster, namespace: str, location: Location) -> dict[str, str] | None:
    if location.credentials is None:
        return None
    return cluster.read_secret(namespace, location.credentials.secret_name)


def storage_for(cluster: Cluster, namespace: str, location: Location) -> Storage:
    return open_storage(location, credentials=_credentials(cluster, namespace, location))


def resolve_videos(run: ActiveLearningRun, input_storage: Storage) -> list[dict[str, Any]]:
    """The sorted video list the inference Job is sized by (`framesift plan` uses it too)."""
    videos = list_videos(input_storage, run.spec.input)
    if not videos:
        raise InputError(f"spec.input: no videos under {input_storage.uri} match include={run.spec.input.include}")
    return video_list_document(videos)


def _snapshot(configmap: dict[str, Any]) -> Snapshot:
    data = configmap.get("data") or {}
    run = parse_run(yaml.safe_load(data["run.yaml"]), f"ConfigMap {configmap['metadata']['name']}")
    generation = (configmap["metadata"].get("annotations") or {}).get(ANNOTATION_SPEC_GENERATION)
    return Snapshot(run, json.loads(data.get("videos.json", "[]")), int(generation) if generation else None)


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

        try:
            check_engine(current)
        except SelectorUnavailable as err:
            return self._invalid(body, status, generation, Reason.ENGINE_UNAVAILABLE, str(err)), False
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
        videos = [v["key"] for v in snapshot.videos] if snapshot else None
        stages = stages_for(run.spec.selection is not None)
        decision = decide(stages, status, generation, configmap is not None, videos, jobs)
        if not decision.status and not decision.create:
            return status.get("phase"), False

        progressed = False
        for item in decision.create:
            if item == "config":
                try:
                    listed = resolve_videos(run, storage_for(self.cluster, namespace, run.spec.input))
                except (InputError, StorageError, LookupError) as err:
                    return self._invalid(body, status, generation, Reason.INPUT_UNAVAILABLE, str(err)), False
                progressed |= self.cluster.create(build_configmap(run, uid, namespace, listed, generation))
                log.info("run %s/%s: %d videos listed; ConfigMap created", namespace, name, len(listed))
            else:
                image = run.spec.image or self.image
                n_videos = len(snapshot.videos) if snapshot else 0
                created = self.cluster.create(build_job(run, uid, namespace, item, image, n_videos))
                progressed |= created
                if created:
                    log.info("run %s/%s: %s Job created", namespace, name, item)
        if decision.read_results:
            self._read_results(run, namespace, decision)
        self._publish(body, decision)
        return decision.status.get("phase"), progressed

    # ----- helpers -----

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

    def _read_results(self, run: ActiveLearningRun, namespace: str, decision: Decision) -> None:
        """Selected count, per-video counts, frames and the report/export URIs, from the output."""
        try:
            output = storage_for(self.cluster, namespace, run.spec.output)
            ctx = RunContext(run, base_dir=Path("/"))
            if output.exists(ctx.run_key("selection.json")):
                selection = json.loads(output.read_text(ctx.run_key("selection.json")))["selection"]
                decision.status["selected"] = len(selection["selected"])
                decision.status["perVideoSelected"] = per_video_counts(item["video"] for item in selection["selected"])
                decision.status["frames"] = {
                    "total": int(selection.get("frames", 0)),
                    "corrupt": int(selection["filtered"].get("corrupt", 0)),
                }
            if output.exists(ctx.run_key("export.json")):
                marker = json.loads(output.read_text(ctx.run_key("export.json")))
                decision.status["reportUri"] = marker["reportUri"]
                decision.status["exportUri"] = marker["exportUri"]
        except (StorageError, LookupError, KeyError, ValueError) as err:
            log.warning("run %s/%s: cannot read its results for status: %s", namespace, run.metadata.name, err)


__all__ = ["Reconciler", "resolve_videos", "storage_for"]
