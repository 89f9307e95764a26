"""An HTTP stand-in of the Lightly API on 127.0.0.1, as strict as the real server on what
../shared/LIGHTLYONE.md lists: the token as a query parameter (403 otherwise), 201 with a 24-hex
id on creates, the exact response field sets of lightly==1.5.26's models, paging, and 404 for a
scheduled run no Worker has picked up yet. It serves the client's calls and the Worker-side
calls the stand-in Worker makes, records every call, and takes drills (an answer for a call,
an outage, a run that crashes at a state).

Run alone (`python -m tests.lightlyone.standin_api --port 0 --token T`) it prints its URL.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

USER_ID = "5f0000000000000000000001"


def new_id() -> str:
    return secrets.token_hex(12)  # 24 hex characters, as the models require


def ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class HttpError(Exception):
    def __init__(self, status: int, code: str, error: str):
        super().__init__(error)
        self.status, self.code, self.error = status, code, error


@dataclass
class State:
    token: str
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    scheduled: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)
    tags: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    # drills
    answers: list[tuple[str, str, int, str]] = field(default_factory=list)  # (method, path regex, status, error)
    down: bool = False  # every call answers 503
    crash_at: str | None = None  # a run reaching this state ends CRASHED


class StandinApi:
    def __init__(self, token: str, port: int = 0):
        self.state = State(token)
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                parsed = urlparse(self.path)
                query = parse_qs(parsed.query, keep_blank_values=True)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    status, payload, content_type = api.handle(method, parsed.path, query, raw)
                except HttpError as err:
                    status, content_type = err.status, "application/json"
                    payload = json.dumps({"code": err.code, "error": err.error}).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ----- dispatch -----

    def handle(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, bytes, str]:
        body = json.loads(raw) if raw and not path.startswith("/blob/") else raw
        with self.lock:
            self.state.calls.append(Call(method, path, query, body if not isinstance(body, bytes) else b"<bytes>"))
            if path.startswith("/v1/versions/pip/"):  # no auth on the versioning endpoints
                return self._json(200, "1.0.0" if path.endswith("minimum") else "1.5.26")
            if path.startswith("/blob/"):  # signed URLs: no token
                return self._blob(method, path.split("/")[2], body)
            if self.state.down:
                raise HttpError(503, "SERVICE_UNAVAILABLE", "the API is down (drill)")
            if query.get("token", [""])[0] != self.state.token:
                raise HttpError(403, "FORBIDDEN", "Access denied: the token is missing or not valid")
            for answer_method, pattern, status, error in self.state.answers:
                if answer_method == method and re.fullmatch(pattern, path):
                    raise HttpError(
                        status, {402: "PAYMENT_REQUIRED", 403: "FORBIDDEN"}.get(status, "BAD_REQUEST"), error
                    )
            for route_method, pattern, func in self.routes():
                match = re.fullmatch(pattern, path)
                if route_method == method and match:
                    status, payload = func(*match.groups(), query=query, body=body)
                    if isinstance(payload, bytes):
                        return status, payload, "application/octet-stream"
                    return self._json(status, payload)
        raise HttpError(404, "NOT_FOUND", f"no route for {method} {path}")

    @staticmethod
    def _json(status: int, payload: Any) -> tuple[int, bytes, str]:
        return status, json.dumps(payload).encode(), "application/json"

    def _blob(self, method: str, blob_id: str, body: Any) -> tuple[int, bytes, str]:
        if method == "PUT":
            self.state.blobs[blob_id] = body
            return 200, b"", "text/plain"
        if blob_id not in self.state.blobs:
            raise HttpError(404, "NOT_FOUND", "no such object")
        return 200, self.state.blobs[blob_id], "application/pdf"

    def routes(self) -> list[tuple[str, str, Any]]:
        ds = r"/v1/datasets/([a-f0-9]{24})"
        return [
            ("GET", r"/v1/datasets/query/name/([^/]+)", self.datasets_by_name),
            ("POST", r"/v1/datasets", self.create_dataset),
            ("GET", ds, self.get_dataset),
            ("PUT", ds + r"/datasource", self.put_datasource),
            ("GET", ds + r"/datasource", self.get_datasource),
            ("POST", r"/v1/docker/worker", self.register_worker),
            ("GET", r"/v1/docker/worker", lambda **_: (200, list(self.state.workers.values()))),
            ("GET", r"/v1/docker/worker/([a-f0-9]{24})", self.get_worker),
            ("PUT", r"/v1/docker/worker/([a-f0-9]{24})", self.put_worker),
            ("DELETE", r"/v1/docker/worker/([a-f0-9]{24})", self.delete_worker),
            ("POST", r"/v1/docker/worker/config/vX", self.create_config),
            ("GET", r"/v1/docker/worker/config/vX/([a-f0-9]{24})", self.get_config),
            ("POST", ds + r"/docker/worker/schedule", self.schedule),
            ("GET", ds + r"/docker/worker/schedule", self.list_scheduled),
            ("PUT", ds + r"/docker/worker/schedule/([a-f0-9]{24})", self.cancel_scheduled),
            ("GET", r"/v1/docker/worker/schedule", self.open_for_labels),
            ("PUT", ds + r"/docker/worker/([a-f0-9]{24})/schedule/([a-f0-9]{24})", self.worker_sets_scheduled),
            ("GET", r"/v1/docker/runs/schedule/([a-f0-9]{24})", self.run_of_scheduled),
            ("POST", r"/v1/docker/runs", self.create_run),
            ("GET", r"/v1/docker/runs/([a-f0-9]{24})", lambda rid, **_: (200, self._run(rid))),
            ("PUT", r"/v1/docker/runs/([a-f0-9]{24})", self.update_run),
            ("GET", r"/v1/docker/runs/([a-f0-9]{24})/tags", self.run_tags),
            ("POST", r"/v1/docker/runs/([a-f0-9]{24})/artifacts", self.create_artifact),
            (
                "PUT",
                r"/v1/docker/runs/([a-f0-9]{24})/artifacts/([a-f0-9]{24})/confirmUpload",
                lambda *_, **__: (200, {}),
            ),
            ("GET", r"/v1/docker/runs/([a-f0-9]{24})/artifacts/([a-f0-9]{24})/readurl", self.artifact_url),
            ("POST", ds + r"/samples", self.create_sample),
            ("POST", ds + r"/tags", self.create_tag),
            ("GET", ds + r"/tags", lambda d, **_: (200, list(self.state.tags.get(self._ds(d)["id"], [])))),
            ("GET", ds + r"/tags/([a-f0-9]{24})", lambda d, t, **_: (200, self._tag(d, t))),
            ("GET", ds + r"/tags/([a-f0-9]{24})/export/basic/filenames", self.export_tag),
        ]

    # ----- datasets and datasources -----

    def _ds(self, dataset_id: str) -> dict[str, Any]:
        if dataset_id not in self.state.datasets:
            raise HttpError(404, "DATASET_UNKNOWN", f"dataset {dataset_id} does not exist")
        return self.state.datasets[dataset_id]

    @staticmethod
    def _page(items: list[Any], query: dict[str, list[str]]) -> list[Any]:
        size = int(query.get("pageSize", ["5000"])[0])
        offset = int(query.get("pageOffset", ["0"])[0])
        return items[offset : offset + size]

    def datasets_by_name(self, name: str, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        from urllib.parse import unquote

        exact = query.get("exact", ["False"])[0].lower() == "true"
        name = unquote(name)
        found = [
            d for d in self.state.datasets.values() if (d["name"] == name if exact else d["name"].startswith(name))
        ]
        if query.get("shared", ["False"])[0].lower() == "true" or query.get("getAssetsOfTeam"):
            found = []  # nothing is shared with this account
        return 200, self._page(found, query)

    def create_dataset(self, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        if set(body) - {"name", "type", "creator", "imgType", "parentDatasetId"} or body.get("type") not in (
            "Images",
            "Videos",
            "Crops",
        ):
            raise HttpError(400, "BAD_REQUEST", f"invalid dataset: {body}")
        if any(d["name"] == body["name"] for d in self.state.datasets.values()):
            raise HttpError(409, "DATASET_NAME_EXISTS", f"a dataset named {body['name']!r} exists")
        dataset_id, now = new_id(), ms()
        self.state.datasets[dataset_id] = {
            "id": dataset_id,
            "name": body["name"],
            "userId": USER_ID,
            "type": body["type"],
            "nSamples": 0,
            "sizeInBytes": 0,
            "createdAt": now,
            "lastModifiedAt": now,
        }
        return 201, {"id": dataset_id}

    def get_dataset(self, dataset_id: str, **_: Any) -> tuple[int, Any]:
        return 200, self._ds(dataset_id)

    def put_datasource(self, dataset_id: str, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        self._ds(dataset_id)
        if body.get("purpose") not in ("INPUT", "LIGHTLY", "INPUT_OUTPUT") or body.get("type") not in (
            "S3",
            "S3DelegatedAccess",
            "OBS",
        ):
            raise HttpError(
                400, "BAD_REQUEST", f"invalid datasource: purpose/type {body.get('purpose')}/{body.get('type')}"
            )
        if not str(body.get("fullPath", "")).startswith("s3://"):
            raise HttpError(400, "BAD_REQUEST", "fullPath must be an s3:// path")
        self.state.datasources[(dataset_id, body["purpose"])] = body
        return 200, {}

    def get_datasource(self, dataset_id: str, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        purpose = query.get("purpose", ["INPUT_OUTPUT"])[0]
        source = self.state.datasources.get((dataset_id, purpose))
        if source is None:
            raise HttpError(404, "NOT_FOUND", f"no {purpose} datasource")
        return 200, {"id": dataset_id, **source}

    # ----- workers, configs, schedules -----

    def register_worker(self, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        for worker in self.state.workers.values():
            if worker["name"] == body["name"]:
                return 201, {"id": worker["id"]}  # registration by name is idempotent
        worker_id, now = new_id(), ms()
        self.state.workers[worker_id] = {
            "id": worker_id,
            "userId": USER_ID,
            "name": body["name"],
            "workerType": body.get("workerType", "FULL"),
            "state": "OFFLINE",
            "createdAt": now,
            "lastModifiedAt": now,
            "labels": list(body.get("labels") or []),
        }
        return 201, {"id": worker_id}

    def _worker(self, worker_id: str) -> dict[str, Any]:
        if worker_id not in self.state.workers:
            raise HttpError(404, "NOT_FOUND", f"worker {worker_id} does not exist")
        return self.state.workers[worker_id]

    def get_worker(self, worker_id: str, **_: Any) -> tuple[int, Any]:
        return 200, self._worker(worker_id)

    def put_worker(self, worker_id: str, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        self._worker(worker_id).update(state=body["state"], lastModifiedAt=ms())
        return 200, {}

    def delete_worker(self, worker_id: str, **_: Any) -> tuple[int, Any]:
        self._worker(worker_id)
        del self.state.workers[worker_id]
        return 200, {}

    def create_config(self, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        if body.get("version") != "V4" or "config" not in body:
            raise HttpError(400, "BAD_REQUEST", "config version V4 expected")
        config_id = new_id()
        self.state.configs[config_id] = body
        return 201, {"id": config_id}

    def get_config(self, config_id: str, **_: Any) -> tuple[int, Any]:
        if config_id not in self.state.configs:
            raise HttpError(404, "NOT_FOUND", "no such config")
        return 200, {"id": config_id, **self.state.configs[config_id]}

    def schedule(self, dataset_id: str, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        self._ds(dataset_id)
        if body.get("configId") not in self.state.configs:
            raise HttpError(404, "NOT_FOUND", "config does not exist")
        if body.get("priority") not in ("LOW", "MID", "HIGH", "CRITICAL"):
            raise HttpError(400, "BAD_REQUEST", "invalid priority")
        scheduled_id, now = new_id(), ms()
        self.state.scheduled[scheduled_id] = {
            "id": scheduled_id,
            "datasetId": dataset_id,
            "configId": body["configId"],
            "priority": body["priority"],
            "runsOn": list(body.get("runsOn") or []),
            "state": "OPEN",
            "createdAt": now,
            "lastModifiedAt": now,
        }
        return 201, {"id": scheduled_id}

    def list_scheduled(self, dataset_id: str, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        wanted = query.get("state", [None])[0]
        runs = [s for s in self.state.scheduled.values() if s["datasetId"] == dataset_id]
        runs = (
            [s for s in runs if s["state"] == wanted]
            if wanted
            else [s for s in runs if s["state"] not in ("DONE", "CANCELED")]
        )
        return 200, runs

    def cancel_scheduled(self, dataset_id: str, scheduled_id: str, **_: Any) -> tuple[int, Any]:
        scheduled = self.state.scheduled.get(scheduled_id)
        if scheduled is None or scheduled["datasetId"] != dataset_id:
            raise HttpError(404, "NOT_FOUND", "no such scheduled run")
        if scheduled["state"] != "OPEN":
            raise HttpError(400, "BAD_REQUEST", f"scheduled run is {scheduled['state']}, not OPEN")
        scheduled.update(state="CANCELED", lastModifiedAt=ms())
        return 200, {}

    def open_for_labels(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        labels = set(query.get("labels", []))
        runs = [
            s
            for s in self.state.scheduled.values()
            if s["state"] == query.get("state", ["OPEN"])[0] and set(s["runsOn"]) <= labels
        ]
        return 200, runs

    def worker_sets_scheduled(
        self, dataset_id: str, worker_id: str, scheduled_id: str, body: dict[str, Any], **_: Any
    ) -> tuple[int, Any]:
        scheduled = self.state.scheduled[scheduled_id]  # (a deregistered Worker may still finish its run)
        if body["state"] == "LOCKED" and scheduled["state"] != "OPEN":
            raise HttpError(409, "CONFLICT", "already locked")
        scheduled.update(state=body["state"], lastModifiedAt=ms(), owner=worker_id)
        return 200, {}

    # ----- runs -----

    def _run(self, run_id: str) -> dict[str, Any]:
        if run_id not in self.state.runs:
            raise HttpError(404, "NOT_FOUND", f"run {run_id} does not exist")
        return self.state.runs[run_id]

    def run_of_scheduled(self, scheduled_id: str, **_: Any) -> tuple[int, Any]:
        for run in self.state.runs.values():
            if run.get("scheduledId") == scheduled_id:
                return 200, run
        raise HttpError(404, "NOT_FOUND", "the scheduled run has not been picked up by a worker")

    def create_run(self, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        run_id, now = new_id(), ms()
        self.state.runs[run_id] = {
            "id": run_id,
            "userId": USER_ID,
            "dockerVersion": body["dockerVersion"],
            "state": "STARTED",
            "createdAt": now,
            "lastModifiedAt": now,
            "datasetId": body["datasetId"],
            "configId": body["configId"],
            "scheduledId": body["scheduledId"],
            "message": "",
            "artifacts": [],
        }
        return 201, {"id": run_id}

    def update_run(self, run_id: str, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        run = self._run(run_id)
        if run["state"] in ("COMPLETED", "FAILED", "CRASHED", "ABORTED"):
            return 200, {}  # ended: later updates change nothing
        state, message = body["state"], body.get("message", "")
        if self.state.crash_at == state:
            state, message = "CRASHED", f"the worker crashed while {body['state']} (drill): out of shared memory"
        run.update(state=state, message=message, lastModifiedAt=ms())
        return 200, {}

    def run_tags(self, run_id: str, **_: Any) -> tuple[int, Any]:
        run = self._run(run_id)
        tags = [t for t in self.state.tags.get(run["datasetId"], []) if t.get("runId") == run_id]
        return 200, sorted(tags, key=lambda t: -t["createdAt"])

    def create_artifact(self, run_id: str, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        artifact_id = new_id()
        self._run(run_id)["artifacts"].append(
            {
                "id": artifact_id,
                "type": body["type"],
                "fileName": body["fileName"],
                "storageLocation": "LIGHTLY",
                "createdAt": ms(),
            }
        )
        return 201, {"signedWriteUrl": f"{self.url}/blob/{artifact_id}", "artifactId": artifact_id}

    def artifact_url(self, run_id: str, artifact_id: str, **_: Any) -> tuple[int, Any]:
        self._run(run_id)
        return 200, f"{self.url}/blob/{artifact_id}"

    # ----- samples and tags -----

    def create_sample(self, dataset_id: str, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        names = self.state.samples.setdefault(self._ds(dataset_id)["id"], [])
        if body["fileName"] not in names:
            names.append(body["fileName"])
            self.state.datasets[dataset_id]["nSamples"] = len(names)
        return 201, {"id": new_id()}

    def create_tag(self, dataset_id: str, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        self._ds(dataset_id)
        if not re.fullmatch(r"0x[a-f0-9]+", body["bitMaskData"]):
            raise HttpError(400, "BAD_REQUEST", "bitMaskData must be 0x<hex>")
        tags = self.state.tags.setdefault(dataset_id, [])
        if any(t["name"] == body["name"] for t in tags):
            raise HttpError(409, "TAG_NAME_EXISTS", f"tag {body['name']!r} exists")
        tag_id = new_id()
        tag = {
            "id": tag_id,
            "datasetId": dataset_id,
            "prevTagId": body.get("prevTagId"),
            "name": body["name"],
            "bitMaskData": body["bitMaskData"],
            "totSize": len(self.state.samples.get(dataset_id, [])),
            "createdAt": ms(),
        }
        if body.get("runId"):
            tag["runId"] = body["runId"]
        tags.append(tag)
        return 201, {"id": tag_id}

    def _tag(self, dataset_id: str, tag_id: str) -> dict[str, Any]:
        for tag in self.state.tags.get(self._ds(dataset_id)["id"], []):
            if tag["id"] == tag_id:
                return tag
        raise HttpError(404, "NOT_FOUND", "no such tag")

    def export_tag(self, dataset_id: str, tag_id: str, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        tag = self._tag(dataset_id, tag_id)
        bits = int(tag["bitMaskData"], 16)
        names = [n for i, n in enumerate(self.state.samples.get(dataset_id, [])) if bits >> i & 1]
        lightly = self.state.datasources.get((dataset_id, "LIGHTLY"), {}).get("fullPath", "")
        fmt = query.get("fileNameFormat", ["NAME"])[0]
        rows = {
            "NAME": names,
            "REDIRECTED_READ_URL": [
                f"{self.url}/v1/datasets/{dataset_id}/samples/{i}/readurlRedirect?publicToken=x"
                for i, _ in enumerate(names)
            ],
            "DATASOURCE_FULL": [f"{lightly}.lightly/frames/{n}" for n in names],
        }[fmt]
        return 200, "\n".join(self._page(rows, query))

    # ----- for tests -----

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        return [c for c in self.state.calls if c.method == method and re.fullmatch(pattern, c.path)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    api = StandinApi(args.token, args.port)
    print(api.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
