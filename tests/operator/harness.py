"""A cluster for operator tests, with no cluster: kmock as the API server (with the gaps fixed
that matter to an operator), a test "kubelet" that plays the Job controller by running each Job's
container command as a local process, and the operator itself as a real `framesift operator`
process (so it can be killed and restarted)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
from kubernetes import client
from kubernetes.client.rest import ApiException

from framesift.api.vocabulary import TERMINATION_LOG_ENV
from framesift.operator.manifests import CONFIG_MOUNT
from tests.podrun import container_env, write_configmaps

FRAMESIFT = str(Path(sys.executable).parent / "framesift")


def stamp() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


POD_LOGS: dict[tuple[str, str], Path] = {}  # (namespace, pod) → the log file the test kubelet writes


class RealisticEmulator(kmock.KubernetesEmulator):
    """kmock plus what the operator relies on: uid, resourceVersion, creationTimestamp,
    generation (bumped on spec changes), the namespace kept in metadata, and 201 on create."""

    _version = 0

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is not None and request.resource.plural == "pods" and request.subresource == "log":
            from aiohttp import web

            path = POD_LOGS.get((request.namespace or "", request.name or ""))
            if path is None:
                return web.Response(status=404, text="pod not found")
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            tail = int(request.params.get("tailLines") or len(lines) or 1)
            return web.Response(text="\n".join(lines[-tail:]) + "\n", content_type="text/plain")
        if request.resource is not None and isinstance(request.data, dict):
            RealisticEmulator._version += 1
            version = str(RealisticEmulator._version)
            meta = request.data.setdefault("metadata", {})
            if request.action == kmock.action.CREATE:
                if request.namespace and not meta.get("namespace"):
                    meta["namespace"] = request.namespace
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                meta.update(
                    {
                        "uid": str(uuid.uuid4()),
                        "resourceVersion": version,
                        "creationTimestamp": stamp(),
                        "generation": 1,
                    }
                )
            elif request.action == kmock.action.UPDATE and request.name is not None:
                meta["resourceVersion"] = version
                key = (request.resource, request.namespace, request.name)
                if "spec" in request.data and request.subresource is None and key in self.objects:
                    current = self.objects[key]
                    if not current.deleted and current.raw.get("spec") != {
                        **current.raw.get("spec", {}),
                        **request.data["spec"],
                    }:
                        meta["generation"] = int(current.raw["metadata"].get("generation", 1)) + 1
        response = await super()._handle(request)
        if (
            request.action == kmock.action.CREATE
            and getattr(response, "status", None) == 200
            and not getattr(response, "prepared", True)
        ):
            response.set_status(201)
        return response


class ApiServer:
    """The emulator served over HTTP on 127.0.0.1 from a background event loop."""

    def __init__(self) -> None:
        self.url = ""
        self.emulator: RealisticEmulator | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("kmock did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with RealisticEmulator() as emulator, kmock.Server(emulator) as server:
            emulator.resources.load_bundled()
            for kind, short in (("ActiveLearningRun", "alr"), ("ActiveLearningSchedule", "als")):
                emulator.resources[f"framesift.dev/v1alpha1/{kind.lower()}s"] = kmock.ResourceInfo(
                    kind=kind,
                    singular=kind.lower(),
                    namespaced=True,
                    shortnames={short},
                    verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                    subresources={"status"},
                )
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "test",
                    "clusters": [{"name": "test", "cluster": {"server": self.url}}],
                    "users": [{"name": "test", "user": {"token": "test"}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                }
            )
        )
        return path

    def api(self) -> client.ApiClient:
        config = client.Configuration()
        config.host = self.url
        return client.ApiClient(config)


def _indexes(values: set[int]) -> str:
    return ",".join(str(i) for i in sorted(values))


class Kubelet:
    """Plays the Job controller and the kubelet: runs every unsuspended Job's container command as
    a local process (per index for Indexed Jobs, with JOB_COMPLETION_INDEX), with the env from the
    referenced Secrets and the ConfigMap volume written to a folder, and writes Job status as
    Kubernetes does. Each attempt is a Pod object, labelled as the Job controller labels them, whose
    status carries the container's exit code and termination message (what the container wrote to
    its terminationMessagePath, else its log's tail on failure). Also garbage-collects children
    (Jobs, ConfigMaps, Pods) whose owner is gone."""

    def __init__(self, server: ApiServer, workdir: Path, env: dict[str, str]):
        self.api = server.api()
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.workdir = workdir
        self.env = env
        self.started: set[str] = set()
        self.logs: list[Path] = []
        self.fail_stage: str | None = None  # make this stage's container exit 1 (a Job that fails outright)
        # SIGKILL the first pod of this stage's index 0 a while after it starts (an OOM kill: exit 137)
        self.kill_first: str | None = None
        self.kill_after_s = 3.0
        self.kill_when: Callable[[], bool] | None = None  # instead of the delay: kill once this holds
        self.killed: list[str] = []
        self.images: dict[str, list[str]] = {}  # image prefix → the command that plays its entrypoint
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _json(self, response: Any) -> dict[str, Any]:
        return json.loads(response.data or b"{}")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = self._json(self.batch.list_job_for_all_namespaces(_preload_content=False))["items"]
                for job in jobs:
                    uid = job["metadata"]["uid"]
                    if uid not in self.started and not job["spec"].get("suspend"):
                        self.started.add(uid)
                        threading.Thread(target=self._run_job, args=(job,), daemon=True).start()
                self._collect_garbage(jobs)
            except Exception as err:  # keep the loop alive; print for the test log
                print(f"kubelet: {err!r}", file=sys.stderr)
            self._stop.wait(0.3)

    def _collect_garbage(self, jobs: list[dict[str, Any]]) -> None:
        runs = self._json(
            self.custom.list_cluster_custom_object(
                "framesift.dev", "v1alpha1", "activelearningruns", _preload_content=False
            )
        )["items"]
        alive = {r["metadata"]["uid"] for r in runs}
        alive |= {j["metadata"]["uid"] for j in jobs}
        cms = self._json(self.core.list_config_map_for_all_namespaces(_preload_content=False))["items"]
        pods = self._json(self.core.list_pod_for_all_namespaces(_preload_content=False))["items"]
        for kind, objs in (("job", jobs), ("cm", cms), ("pod", pods)):
            for obj in objs:
                refs = obj["metadata"].get("ownerReferences") or []
                if refs and not any(r["uid"] in alive for r in refs):
                    meta = obj["metadata"]
                    try:
                        if kind == "job":
                            self.batch.delete_namespaced_job(meta["name"], meta["namespace"], _preload_content=False)
                        elif kind == "pod":
                            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], _preload_content=False)
                        else:
                            self.core.delete_namespaced_config_map(
                                meta["name"], meta["namespace"], _preload_content=False
                            )
                    except ApiException:
                        pass

    def _create_pod(self, job: dict[str, Any], name: str, index: int | None) -> dict[str, Any]:
        """The pod the Job controller would make, labelled as it labels them."""
        meta = job["metadata"]
        labels = {
            **(job["spec"]["template"].get("metadata", {}).get("labels") or {}),
            "batch.kubernetes.io/job-name": meta["name"],
            "job-name": meta["name"],
        }
        if index is not None:
            labels["batch.kubernetes.io/job-completion-index"] = str(index)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": job["spec"]["template"]["spec"],
        }
        created = self._json(self.core.create_namespaced_pod(meta["namespace"], pod, _preload_content=False))
        return created or pod

    def _image_pull_backoff(self, job: dict[str, Any], image: str) -> None:
        """An image no registry serves: its pod stays Pending, waiting in ImagePullBackOff."""
        pod = self._create_pod(job, f"{job['metadata']['name']}-0-{uuid.uuid4().hex[:5]}", None)
        waiting = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
        status = {
            "phase": "Pending",
            "containerStatuses": [{"name": pod["spec"]["containers"][0]["name"], "state": {"waiting": waiting}}],
        }
        meta = pod["metadata"]
        self.core.patch_namespaced_pod_status(
            meta["name"], meta["namespace"], {"status": status}, _preload_content=False
        )
        self._patch_status(job, {"startTime": stamp(), "active": 1})

    def _finish_pod(self, pod: dict[str, Any], code: int, message: str) -> None:
        container = pod["spec"]["containers"][0]["name"]
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "message": message[:4096]}
        status = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [{"name": container, "state": {"terminated": terminated}}],
        }
        meta = pod["metadata"]
        self.core.patch_namespaced_pod_status(
            meta["name"], meta["namespace"], {"status": status}, _preload_content=False
        )

    def _patch_status(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        meta = job["metadata"]
        self.batch.patch_namespaced_job_status(
            meta["name"], meta["namespace"], {"status": status}, _preload_content=False
        )

    def _container_env(self, namespace: str, container: dict[str, Any]) -> dict[str, str]:
        env = container_env(self.core, namespace, container, {**os.environ, **self.env}, {})
        env["FRAMESIFT_CACHE"] = str(self.workdir / "cache")  # one cache for all "pods" of the test
        return env

    def _run_job(self, job: dict[str, Any]) -> None:
        meta, spec = job["metadata"], job["spec"]
        pod = spec["template"]["spec"]
        container = pod["containers"][0]
        folder = Path(tempfile.mkdtemp(prefix=f"{meta['name']}-", dir=self.workdir))
        write_configmaps(self.core, meta["namespace"], pod, folder)
        if "command" not in container:  # an image's own entrypoint: a local program plays it, if known
            entrypoint = next(
                (cmd for prefix, cmd in self.images.items() if container["image"].startswith(prefix)), None
            )
            if entrypoint is None:
                self._image_pull_backoff(job, container["image"])
                return
            container = {**container, "command": entrypoint}
        command = [
            FRAMESIFT if c == "framesift" else c.replace(CONFIG_MOUNT, str(folder / "config"))
            for c in container["command"]
        ]
        if self.fail_stage and meta["labels"].get("framesift.dev/stage") == self.fail_stage:
            command = [sys.executable, "-c", "import sys; print('simulated crash'); sys.exit(1)"]
        env = self._container_env(meta["namespace"], container)
        fail_index_codes = {
            code
            for rule in spec.get("podFailurePolicy", {}).get("rules", [])
            if rule["action"] == "FailIndex"
            for code in rule["onExitCodes"]["values"]
        }
        started = stamp()
        status: dict[str, Any] = {"startTime": started, "active": 1}
        self._patch_status(job, status)

        def attempt(index: int | None) -> int:
            run_env = dict(env)
            if index is not None:
                run_env["JOB_COMPLETION_INDEX"] = str(index)
            name = f"{meta['name']}-{index if index is not None else 0}-{uuid.uuid4().hex[:5]}"
            log = folder / f"{name}.log"
            termination = folder / f"{name}.termination-log"
            run_env[TERMINATION_LOG_ENV] = str(termination)  # where the container's terminationMessagePath is
            self.logs.append(log)
            pod = self._create_pod(job, name, index)
            POD_LOGS[(meta["namespace"], name)] = log
            self.core.patch_namespaced_pod_status(
                name, meta["namespace"], {"status": {"phase": "Running"}}, _preload_content=False
            )
            kill = (
                self.kill_first == meta["labels"].get("framesift.dev/stage")
                and index in (None, 0)
                and not any(k.startswith(f"{meta['name']}-") for k in self.killed)
            )
            with log.open("w") as out:
                proc = subprocess.Popen(command, env=run_env, stdout=out, stderr=subprocess.STDOUT)
                try:
                    if kill and self.kill_when is not None:
                        while proc.poll() is None and not self.kill_when():
                            time.sleep(0.05)
                        if proc.poll() is None:
                            raise subprocess.TimeoutExpired(command, 0)
                    proc.wait(timeout=self.kill_after_s if kill else 900)
                except subprocess.TimeoutExpired:
                    proc.kill()  # SIGKILL, as the kernel's OOM killer does
                    proc.wait()
                    self.killed.append(name)
                code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode  # -9 → 137
            message = termination.read_text() if termination.exists() else ""
            if not message and code != 0:  # terminationMessagePolicy: FallbackToLogsOnError
                message = log.read_text()[-2048:]
            self._finish_pod(pod, code, message)
            return code

        if spec.get("completionMode") == "Indexed":
            completed: set[int] = set()
            failed: set[int] = set()
            failures = 0
            for index in range(spec["completions"]):
                for _ in range(spec.get("backoffLimitPerIndex", 0) + 1):
                    code = attempt(index)
                    if code == 0:
                        completed.add(index)
                        break
                    failures += 1
                    if code in fail_index_codes:
                        break
                if index not in completed:
                    failed.add(index)
                status.update(
                    {
                        "completedIndexes": _indexes(completed),
                        "failedIndexes": _indexes(failed),
                        "succeeded": len(completed),
                        "failed": failures,
                    }
                )
                self._patch_status(job, status)
            if failed:
                conditions = [
                    {
                        "type": "FailureTarget",
                        "status": "True",
                        "reason": "FailedIndexes",
                        "message": "Job has failed indexes",
                    },
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "FailedIndexes",
                        "message": "Job has failed indexes",
                    },
                ]
            else:
                conditions = [
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached"},
                ]
        else:
            fail_job_codes = {
                code
                for rule in spec.get("podFailurePolicy", {}).get("rules", [])
                if rule["action"] == "FailJob"
                for code in rule["onExitCodes"]["values"]
            }
            failures = 0
            for _ in range(spec.get("backoffLimit", 6) + 1):
                code = attempt(None)
                if code == 0:
                    break
                failures += 1
                status["failed"] = failures
                self._patch_status(job, status)
                if code in fail_job_codes:  # podFailurePolicy FailJob: no retry
                    failures = -1
                    break
            else:
                failures = -1
            if failures >= 0:
                status["succeeded"] = 1
                conditions = [{"type": "Complete", "status": "True", "reason": "CompletionsReached"}]
            else:
                conditions = [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit",
                    }
                ]
        now = stamp()
        status.update({"active": 0, "conditions": [{**c, "lastTransitionTime": now} for c in conditions]})
        if any(c["type"] == "Complete" for c in conditions):
            status["completionTime"] = now
        self._patch_status(job, status)


class Operator:
    """`framesift operator` as a real process against the emulator."""

    def __init__(self, kubeconfig: Path, log: Path, env: dict[str, str]):
        self.kubeconfig, self.log, self.env = kubeconfig, log, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = self.liveness_port = 0

    def start(self, metrics_port: int, liveness_port: int) -> None:
        self.metrics_port, self.liveness_port = metrics_port, liveness_port
        env = {**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    FRAMESIFT,
                    "operator",
                    "--image",
                    "framesift:test",
                    "--resync",
                    "2",
                    "--metrics-port",
                    str(metrics_port),
                    "--liveness-port",
                    str(liveness_port),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # no goodbye: a crash, as a restart test wants
            self.proc.wait(timeout=30)
        self.proc = None


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def operator_calls(server: ApiServer) -> set[tuple[str, str, str]]:
    """(verb, API group, resource[/subresource]) of every request the operator process made:
    its Kubernetes client says `framesift-operator`, kopf's own client says `kopf`."""
    calls = set()
    assert server.emulator is not None
    for request in list(server.emulator):
        agent = request.headers.get("User-Agent", "")
        if request.resource is None or request.resource.plural is None:  # discovery: not under RBAC
            continue
        if not ("framesift-operator" in agent or "kopf" in agent.lower()):
            continue
        method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
        if method == "GET":
            verb = "watch" if request.params.get("watch") in ("true", "1") else ("get" if request.name else "list")
        else:
            verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]
        resource = request.resource.plural + (f"/{request.subresource}" if request.subresource else "")
        calls.add((verb, request.resource.group or "", resource))
    return calls


def allowed(rules: list[dict[str, Any]], verb: str, group: str, resource: str) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


GROUP, VERSION, PLURAL = "framesift.dev", "v1alpha1", "activelearningruns"


@dataclass
class Cluster:
    server: ApiServer
    kubelet: Kubelet
    operator: Operator
    workdir: Path

    @property
    def api(self) -> client.ApiClient:
        return self.server.api()

    def _json(self, response: Any) -> Any:
        return json.loads(response.data or b"{}")

    def create_secret(self, namespace: str, name: str, values: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }
        client.CoreV1Api(self.api).create_namespaced_secret(namespace, body, _preload_content=False)

    def apply_run(self, namespace: str, doc: dict[str, Any]) -> None:
        client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, doc, _preload_content=False
        )

    def run(self, namespace: str, name: str) -> dict[str, Any]:
        return self._json(
            client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
            )
        )

    def patch_run(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch, _preload_content=False
        )

    def delete_run(self, namespace: str, name: str) -> None:
        client.CustomObjectsApi(self.api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
        )

    def jobs(self, namespace: str) -> list[dict[str, Any]]:
        return self._json(client.BatchV1Api(self.api).list_namespaced_job(namespace, _preload_content=False))["items"]

    def configmaps(self, namespace: str) -> list[dict[str, Any]]:
        return self._json(client.CoreV1Api(self.api).list_namespaced_config_map(namespace, _preload_content=False))[
            "items"
        ]

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return self._json(client.CoreV1Api(self.api).list_namespaced_event(namespace, _preload_content=False))["items"]

    def wait_phase(self, namespace: str, name: str, phases: tuple[str, ...], timeout: float = 420) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            try:
                run = self.run(namespace, name)
            except ApiException as err:  # not created yet (a schedule's tick makes it)
                if err.status == 404:
                    return None
                raise
            return run if (run.get("status") or {}).get("phase") in phases else None

        try:
            return wait_for(reached, timeout, f"run {name} to reach {phases}")
        except AssertionError:
            print(self.operator.log.read_text()[-5000:], file=sys.stderr)
            raise
