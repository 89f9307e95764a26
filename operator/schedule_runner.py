"""One reconcile of one ActiveLearningSchedule: read it and its runs, `decide_schedule`, act.

A schedule whose spec does not validate gets a Scheduling=False condition and an Event, and
creates nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from framesift.api.errors import ManifestError, validate_or_raise
from framesift.api.schedule import ActiveLearningSchedule
from framesift.api.vocabulary import Reason
from framesift.operator.clock import now as clock_now
from framesift.operator.kube import Cluster
from framesift.operator.reconcile import set_condition
from framesift.operator.schedule import SCHEDULING, decide_schedule

log = logging.getLogger(__name__)


class ScheduleReconciler:
    def __init__(self, cluster: Cluster, clock: Callable[[], datetime] = clock_now):
        self.cluster = cluster
        self.clock = clock

    def reconcile(self, namespace: str, name: str) -> None:
        body = self.cluster.get_schedule(namespace, name)
        if body is None:
            return
        try:
            schedule: ActiveLearningSchedule = validate_or_raise(
                ActiveLearningSchedule,
                {k: v for k, v in body.items() if k != "status"},
                f"ActiveLearningSchedule {name}",
            )
        except ManifestError as err:
            self._invalid(body, "; ".join(err.problems))
            return
        runs = self.cluster.runs_of_schedule(namespace, name, body["metadata"].get("uid", ""))
        decision = decide_schedule(body, schedule.spec, runs, self.clock())
        for run_name in decision.delete:
            self.cluster.delete_run(namespace, run_name)
            log.info("schedule %s/%s: run %s deleted", namespace, name, run_name)
        if decision.create is not None and self.cluster.create_run(decision.create):
            log.info("schedule %s/%s: run %s created", namespace, name, decision.create["metadata"]["name"])
        self._publish(body, decision.status, decision.events)

    def _publish(self, body: dict[str, Any], status: dict[str, Any], events: list[tuple[str, str, str]]) -> None:
        meta = body["metadata"]
        current = body.get("status") or {}
        if status != current:
            patch = {**status, **{k: None for k in current if k not in status}}
            self.cluster.patch_schedule_status(meta["namespace"], meta["name"], patch)
        for kind, reason, message in events:
            log.info("schedule %s/%s: %s %s: %s", meta["namespace"], meta["name"], kind, reason, message)
            self.cluster.post_event(body, kind, reason, message)

    def _invalid(self, body: dict[str, Any], message: str) -> None:
        status = dict(body.get("status") or {})
        old = status.get("conditions", [])
        status["conditions"] = set_condition(
            old, SCHEDULING, "False", Reason.INVALID_SPEC, message, body["metadata"].get("generation")
        )
        events: list[tuple[str, str, str]] = []
        if status != (body.get("status") or {}):
            events.append(("Warning", Reason.INVALID_SPEC, message))
        self._publish(body, status, events)
