"""The operator's side effects on the cluster: a thin layer over the Kubernetes client.

Everything comes back as plain dicts. Label selectors are applied here, client-side, as well as
sent to the server: children are also matched by the run's UID in their ownerReferences, so a
stale Job of an earlier run with the same name is never mistaken for this run's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast  # the client takes plain dicts where its hints name models

from kubernetes import client
from kubernetes.client.rest import ApiException

from framesift.api.models import GROUP, PLURAL, VERSION
from framesift.api.schedule import SCHEDULE_PLURAL
from framesift.operator.manifests import LABEL_RUN, LABEL_STAGE
from framesift.operator.reconcile import now
from framesift.operator.schedule import LABEL_SCHEDULE

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set by the Job controller on every pod (1.27+)


class Cluster:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(response.data or b"{}")
        return data

    def _get(self, call: Any, *args: Any) -> dict[str, Any] | None:
        try:
            return self._json(call(*args, _preload_content=False))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    # ----- runs -----

    def get_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)

    def list_runs(self) -> list[dict[str, Any]]:
        data = self._json(self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, _preload_content=False))
        return list(data.get("items", []))

    def patch_run_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _preload_content=False
        )

    # ----- schedules and the runs they create -----

    def get_schedule(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, SCHEDULE_PLURAL, name)

    def list_schedules(self) -> list[dict[str, Any]]:
        data = self._json(
            self.custom.list_cluster_custom_object(GROUP, VERSION, SCHEDULE_PLURAL, _preload_content=False)
        )
        return list(data.get("items", []))

    def patch_schedule_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, SCHEDULE_PLURAL, name, {"status": status}, _preload_content=False
        )

    def runs_of_schedule(self, namespace: str, schedule: str, schedule_uid: str) -> list[dict[str, Any]]:
        """The schedule's runs: labelled with its name and owned by its uid (checked here too)."""
        data = self._json(
            self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, label_selector=f"{LABEL_SCHEDULE}={schedule}", _preload_content=False
            )
        )
        return [
            run
            for run in data.get("items", [])
            if (run["metadata"].get("labels") or {}).get(LABEL_SCHEDULE) == schedule
            and any(ref.get("uid") == schedule_uid for ref in run["metadata"].get("ownerReferences") or [])
        ]

    def create_run(self, doc: dict[str, Any]) -> bool:
        """False when the run exists (the tick was acted on before a restart)."""
        try:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, doc["metadata"]["namespace"], PLURAL, doc, _preload_content=False
            )
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        return True

    def delete_run(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, propagation_policy="Background", _preload_content=False
            )
        except ApiException as err:
            if err.status != 404:
                raise

    # ----- children -----

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self.core.read_namespaced_config_map, name, namespace)

    def jobs_of(self, namespace: str, run_name: str, run_uid: str) -> dict[str, dict[str, Any]]:
        data = self._json(
            self.batch.list_namespaced_job(namespace, label_selector=f"{LABEL_RUN}={run_name}", _preload_content=False)
        )
        jobs: dict[str, dict[str, Any]] = {}
        for job in data.get("items", []):
            meta = job.get("metadata", {})
            owned = any(ref.get("uid") == run_uid for ref in meta.get("ownerReferences") or [])
            labels = meta.get("labels") or {}
            if owned and labels.get(LABEL_RUN) == run_name and LABEL_STAGE in labels:
                jobs[labels[LABEL_STAGE]] = job
        return jobs

    def create(self, obj: dict[str, Any]) -> bool:
        """Create a child; False when it already exists (a restart raced us: that is fine)."""
        namespace = obj["metadata"]["namespace"]
        try:
            if obj["kind"] == "ConfigMap":
                self.core.create_namespaced_config_map(namespace, cast(Any, obj), _preload_content=False)
            elif obj["kind"] == "Job":
                self.batch.create_namespaced_job(namespace, cast(Any, obj), _preload_content=False)
            else:
                raise ValueError(f"unexpected kind {obj['kind']}")
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        return True

    def pods_of_job(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        """The pods the Job controller made for a Job (their termination messages are the
        stages' summaries). The label is checked here too, as for Jobs."""
        data = self._json(
            self.core.list_namespaced_pod(
                namespace, label_selector=f"{JOB_NAME_LABEL}={job_name}", _preload_content=False
            )
        )
        return [
            pod
            for pod in data.get("items", [])
            if (pod.get("metadata", {}).get("labels") or {}).get(JOB_NAME_LABEL) == job_name
        ]

    def pod_log(self, namespace: str, pod_name: str, tail_lines: int) -> str:
        """The tail of a pod's log: the select pod of a LightlyOne run reports its run's state
        there (ids and states only), which needs `pods/log` and no Secret."""
        try:
            response: Any = self.core.read_namespaced_pod_log(
                pod_name, namespace, tail_lines=tail_lines, _preload_content=False
            )
        except ApiException as err:
            if err.status in (400, 404):  # not started yet, or gone
                return ""
            raise
        return bytes(response.data or b"").decode("utf-8", "replace")

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and its pods (a LightlyOne Worker left waiting after its select Job ended)."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background", _preload_content=False)
        except ApiException as err:
            if err.status != 404:
                raise

    # ----- events -----

    def post_event(self, run: dict[str, Any], kind: str, reason: str, message: str) -> None:
        meta = run["metadata"]
        stamp = now()
        digest = hashlib.sha1(f"{meta.get('uid')}|{reason}|{message}|{stamp}".encode()).hexdigest()[:10]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{digest}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": run["apiVersion"],
                "kind": run["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": kind,
            "source": {"component": "framesift-operator"},
            "reportingComponent": "framesift-operator",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], cast(Any, event), _preload_content=False)
        except ApiException as err:
            if err.status != 409:
                raise
