"""kopf wiring: thin handlers that hand every event to the Reconciler.

No finalizer (nothing outside the cluster needs cleaning: children go by garbage collection),
so no timers or daemons, which would add one. Runs reconcile on their own events and on their
Jobs' events; a resync loop every `resync` seconds catches anything an event missed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from framesift.api.models import GROUP, PLURAL, VERSION
from framesift.operator import metrics
from framesift.operator.kube import Cluster
from framesift.operator.manifests import LABEL_RUN
from framesift.operator.reconcile import TERMINAL
from framesift.operator.runner import Reconciler

log = logging.getLogger(__name__)


class OperatorState:
    def __init__(self, reconciler: Reconciler, resync: float):
        self.reconciler = reconciler
        self.resync = resync
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def reconcile(self, namespace: str, name: str) -> None:
        lock = self.locks.setdefault((namespace, name), asyncio.Lock())
        async with lock:  # one reconcile per run at a time; others queue behind it
            try:
                await asyncio.to_thread(self.reconciler.reconcile, namespace, name)
            except Exception:
                log.exception("reconciling %s/%s failed; retried on the next event or resync", namespace, name)


def register(registry: kopf.OperatorRegistry, state: OperatorState, metrics_port: int | None) -> None:
    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True
        settings.posting.enabled = False  # Events are posted by the reconciler, with reasons
        if metrics_port:
            metrics.serve(metrics_port)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def run_event(type: str | None, namespace: str, name: str, body: Any, **_: Any) -> None:
        if type == "DELETED":
            metrics.observe_phase(namespace, name, None)
            return
        if (body.get("status") or {}).get("phase") in TERMINAL:
            return
        await state.reconcile(namespace, name)

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_RUN: kopf.PRESENT}, registry=registry)
    async def job_event(namespace: str, labels: Any, **_: Any) -> None:
        await state.reconcile(namespace, labels[LABEL_RUN])

    @kopf.on.startup(registry=registry)
    async def start_resync(**_: Any) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(state.resync)
                try:
                    runs = await asyncio.to_thread(state.reconciler.cluster.list_runs)
                except Exception:
                    log.exception("resync: listing runs failed")
                    continue
                for run in runs:
                    meta = run.get("metadata", {})
                    if (run.get("status") or {}).get("phase") not in TERMINAL and meta.get("namespace"):
                        await state.reconcile(meta["namespace"], meta["name"])

        asyncio.get_running_loop().create_task(loop())


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
