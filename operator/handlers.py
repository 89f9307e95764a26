"""kopf wiring: thin handlers that hand every event to the Reconciler.

No finalizer (nothing outside the cluster needs cleaning: children go by garbage collection),
so no timers or daemons, which would add one. Runs reconcile on their own events and on their
Jobs' events; a resync loop every `resync` seconds catches anything an event missed, and brings
every ActiveLearningSchedule's due ticks (a schedule's time, not an event, makes a tick due).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from framesift.api.models import GROUP, PLURAL, VERSION
from framesift.api.schedule import SCHEDULE_PLURAL
from framesift.api.vocabulary import TERMINAL_PHASES
from framesift.operator import metrics
from framesift.operator.kube import Cluster
from framesift.operator.manifests import LABEL_RUN
from framesift.operator.runner import Reconciler
from framesift.operator.schedule_runner import ScheduleReconciler

log = logging.getLogger(__name__)

RunKey = tuple[str, str]  # (namespace, name)
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 300.0


def retry_delay(failures: int) -> float:
    """Seconds before retrying a run whose reconcile failed `failures` times in a row (exponential)."""
    return float(min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** max(0, failures - 1)))


class OperatorState:
    def __init__(self, reconciler: Reconciler, resync: float, schedules: ScheduleReconciler | None = None):
        self.reconciler = reconciler
        self.schedules = schedules or ScheduleReconciler(reconciler.cluster)
        self.resync = resync
        self.locks: dict[RunKey, asyncio.Lock] = {}
        self.failures: dict[RunKey, int] = {}
        self.retries: dict[RunKey, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()  # background loops, referenced so they are not collected

    async def reconcile(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:  # one reconcile per run at a time; others queue behind it
            try:
                await asyncio.to_thread(self.reconciler.reconcile, namespace, name)
            except Exception:
                self.failures[key] = self.failures.get(key, 0) + 1
                delay = retry_delay(self.failures[key])
                log.exception("reconciling %s/%s failed; retrying in %.0f s", namespace, name, delay)
                self._retry_later(key, delay)
            else:
                self.failures.pop(key, None)

    async def reconcile_schedule(self, namespace: str, name: str) -> None:
        lock = self.locks.setdefault(("schedule/" + namespace, name), asyncio.Lock())
        async with lock:
            try:
                await asyncio.to_thread(self.schedules.reconcile, namespace, name)
            except Exception:  # the next resync tries again: ticks are computed from status, not events
                log.exception("reconciling schedule %s/%s failed", namespace, name)

    def _retry_later(self, key: RunKey, delay: float) -> None:
        if key in self.retries and not self.retries[key].done():
            return  # one pending retry per run

        async def retry() -> None:
            await asyncio.sleep(delay)
            self.retries.pop(key, None)
            await self.reconcile(*key)

        self.retries[key] = asyncio.get_running_loop().create_task(retry())

    def forget(self, namespace: str, name: str) -> None:
        """A deleted run: drop its lock, failure count and pending retry."""
        key = (namespace, name)
        self.locks.pop(key, None)
        self.failures.pop(key, None)
        retry = self.retries.pop(key, None)
        if retry is not None:
            retry.cancel()


def register(registry: kopf.OperatorRegistry, state: OperatorState, metrics_port: int | None) -> None:
    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True
        settings.posting.enabled = False  # Events are posted by the reconciler, with reasons
        if metrics_port:
            metrics.serve(metrics_port)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def run_event(type: str, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        if namespace is None:  # the kind is namespaced; kopf's signature allows cluster-scoped ones
            return
        if type == "DELETED":
            metrics.observe_phase(namespace, name, None)
            state.forget(namespace, name)
            return
        if (body.get("status") or {}).get("phase") in TERMINAL_PHASES:
            return
        await state.reconcile(namespace, name)

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_RUN: kopf.PRESENT}, registry=registry)
    async def job_event(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        if namespace is not None:
            await state.reconcile(namespace, labels[LABEL_RUN])

    @kopf.on.event(GROUP, VERSION, SCHEDULE_PLURAL, registry=registry)
    async def schedule_event(type: str, namespace: str | None, name: str, **_: Any) -> None:
        if namespace is not None and type != "DELETED":  # its runs go with it (ownerReferences)
            await state.reconcile_schedule(namespace, name)

    @kopf.on.startup(registry=registry)
    async def start_resync(**_: Any) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(state.resync)
                try:  # ticks come due with time, not with events: every schedule on every pass
                    schedules = await asyncio.to_thread(state.reconciler.cluster.list_schedules)
                except Exception:
                    log.exception("resync: listing schedules failed")
                    schedules = []
                for schedule in schedules:
                    meta = schedule.get("metadata", {})
                    if meta.get("namespace"):
                        await state.reconcile_schedule(meta["namespace"], meta["name"])
                try:
                    runs = await asyncio.to_thread(state.reconciler.cluster.list_runs)
                except Exception:
                    log.exception("resync: listing runs failed")
                    continue
                for run in runs:
                    meta = run.get("metadata", {})
                    if (run.get("status") or {}).get("phase") not in TERMINAL_PHASES and meta.get("namespace"):
                        await state.reconcile(meta["namespace"], meta["name"])

        task = asyncio.get_running_loop().create_task(loop())
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)


def run_operator(
    image: str,
    namespaces: list[str],
    metrics_port: int | None,
    liveness_port: int | None,
    resync: float = 30.0,
    defaults: dict[str, Any] | None = None,
    stop_flag: Any = None,
) -> None:
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api = client.ApiClient()
    api.user_agent = "framesift-operator/0.1.0"  # tells the operator's calls apart in audit logs (and RBAC tests)
    state = OperatorState(Reconciler(Cluster(api), image, defaults), resync)
    registry = kopf.OperatorRegistry()
    register(registry, state, metrics_port)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)  # the same configuration the Kubernetes client loaded

    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None,
        stop_flag=stop_flag,
    )
