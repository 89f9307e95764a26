"""A stand-in for the LightlyOne Worker container (closed source, not reachable here): what the
test kubelet runs as the Worker pod, and what the CLI test starts beside `framesift run`.

Like the real Worker (../shared/LIGHTLYONE.md §6) it reads LIGHTLY_TOKEN, LIGHTLY_WORKER_ID and
LIGHTLY_SERVER_LOCATION, polls for OPEN scheduled runs whose runsOn its labels cover, locks one,
creates the run, walks the states, reads the datasources' buckets (the local S3 server), selects
(framesift's builtin engine over the results framesift left in the bucket, with the config it
was sent), writes the frames under `.lightly/frames/`, registers them as samples, tags them,
uploads a REPORT_PDF artifact, ends COMPLETED and, as shutdown_when_job_finished asks, exits.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

STATES = ("INITIALIZING", "LOADING_DATASET", "LOADING_PREDICTION", "CHECKING_CORRUPTNESS", "EMBEDDING", "SAMPLING")
REPORT_STATES = ("SAVING_RESULTS", "GENERATING_REPORT", "UPLOADING_REPORT", "UPLOADED_REPORT")
MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


class Api:
    def __init__(self) -> None:
        self.base = os.environ.get("LIGHTLY_SERVER_LOCATION", "https://api.lightly.ai").rstrip("/")
        self.token = os.environ["LIGHTLY_TOKEN"]

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """One API call; 5xx answers are retried for a minute, as a Worker rides out an outage."""
        deadline = time.monotonic() + 60
        while True:
            response = requests.request(
                method, self.base + path, params={**params, "token": self.token}, json=body, timeout=30
            )
            if response.status_code < 500 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return response.json() if response.content else None


def snake(cfg: Any, keep: bool = False) -> Any:
    """The config back to snake_case keys, except inside `target` (class and video names)."""
    if not isinstance(cfg, dict):
        return [snake(v) for v in cfg] if isinstance(cfg, list) else cfg
    if keep:
        return dict(cfg)
    return {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): snake(v, keep=k == "target") for k, v in cfg.items()}


def storage_of(source: dict[str, Any]) -> Any:
    from framesift.api.models import Location
    from framesift.jobs.storage import open_storage

    location = Location(uri=source["fullPath"], endpoint_url=source.get("obsEndpoint"))
    creds = {
        "AWS_ACCESS_KEY_ID": source.get("obsAccessKeyId", ""),
        "AWS_SECRET_ACCESS_KEY": source.get("obsSecretAccessKey", ""),
    }
    return open_storage(location, credentials=creds)


def wait_for_run(api: Api, worker_id: str, labels: list[str], patience_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        runs = api.call("GET", "/v1/docker/worker/schedule", state="OPEN", labels=labels, version="V4")
        if runs:
            return dict(runs[0])
        time.sleep(0.3)
    return None


def work(api: Api, worker_id: str, scheduled: dict[str, Any]) -> int:
    dataset_id = scheduled["datasetId"]
    api.call(
        "PUT", f"/v1/datasets/{dataset_id}/docker/worker/{worker_id}/schedule/{scheduled['id']}", {"state": "LOCKED"}
    )
    run_id = api.call(
        "POST",
        "/v1/docker/runs",
        {
            "dockerVersion": "2.11.0-standin",
            "datasetId": dataset_id,
            "scheduledId": scheduled["id"],
            "configId": scheduled["configId"],
        },
    )["id"]
    config = api.call("GET", f"/v1/docker/worker/config/vX/{scheduled['configId']}")["config"]

    def state(name: str, message: str = "") -> bool:
        api.call("PUT", f"/v1/docker/runs/{run_id}", {"state": name, "message": message})
        ended = api.call("GET", f"/v1/docker/runs/{run_id}")["state"]
        return ended in ("CRASHED", "FAILED", "ABORTED")

    for name in STATES[:2]:
        if state(name):
            return 1
        time.sleep(0.2)
    lightly = storage_of(api.call("GET", f"/v1/datasets/{dataset_id}/datasource", purpose="LIGHTLY"))
    source_input = api.call("GET", f"/v1/datasets/{dataset_id}/datasource", purpose="INPUT")
    videos = storage_of(source_input)
    for name in STATES[2:]:
        if state(name):
            return 1
    picks = select(lightly, config)
    write_frames(lightly, videos, picks)
    for name in picks:
        api.call("POST", f"/v1/datasets/{dataset_id}/samples", {"fileName": name})
    samples = len(picks)  # a fresh dataset: the samples are the picks, in order
    mask = hex((1 << samples) - 1) if samples else "0x0"
    api.call(
        "POST",
        f"/v1/datasets/{dataset_id}/tags",
        {"name": "initial-tag", "bitMaskData": mask, "prevTagId": None, "runId": run_id},
    )
    for name in REPORT_STATES:
        if state(name):
            return 1
    upload = api.call("POST", f"/v1/docker/runs/{run_id}/artifacts", {"fileName": "report.pdf", "type": "REPORT_PDF"})
    requests.put(upload["signedWriteUrl"], data=MINIMAL_PDF, timeout=30).raise_for_status()
    api.call("PUT", f"/v1/docker/runs/{run_id}/artifacts/{upload['artifactId']}/confirmUpload")
    state("COMPLETED", f"selected {samples} frames")
    api.call(
        "PUT", f"/v1/datasets/{dataset_id}/docker/worker/{worker_id}/schedule/{scheduled['id']}", {"state": "DONE"}
    )
    return 0


def select(lightly: Any, config: dict[str, Any]) -> list[str]:
    """framesift's builtin engine over the results in the bucket, with the selection it was sent."""
    from framesift.api.selection_config import SelectionConfig
    from framesift.jobs.selection.engine import select as run_engine
    from framesift.jobs.selection.sources import from_results, latest_results, read_metadata

    selection = SelectionConfig.model_validate(
        {k: v for k, v in snake(config["selection"]).items() if k != "auto_tasks"}
    )
    tasks = list(json.loads(lightly.read_text(".lightly/predictions/tasks.json")))
    threshold = float(snake(config.get("docker") or {}).get("corruptness_check", {}).get("corruption_threshold", 0.1))
    schema, per_video = read_metadata(lightly)
    data = from_results(latest_results(lightly), tasks[0], threshold, schema, per_video)
    return [p.file_name for p in run_engine(data, selection).picks]


def write_frames(lightly: Any, videos: Any, names: list[str]) -> None:
    import cv2

    from framesift.jobs.selection.sources import latest_results
    from framesift.jobs.video import extract_frames

    by_video: dict[str, dict[int, str]] = {}
    results = {r.video: r for r in latest_results(lightly)}
    for res in results.values():
        from framesift.jobs.video import frame_name

        for index in range(res.n_frames):
            name = frame_name(res.video, index, res.n_frames)
            if name in names:
                by_video.setdefault(res.video, {})[index] = name
    with tempfile.TemporaryDirectory() as tmp:
        for video, wanted in by_video.items():
            path = videos.download(video, Path(tmp) / Path(video).name)
            for index, image in extract_frames(path, sorted(wanted)):
                _ok, png = cv2.imencode(".png", image)
                lightly.write_bytes(f".lightly/frames/{wanted[index]}", png.tobytes(), "image/png")


def main() -> int:
    api = Api()
    worker_id = os.environ["LIGHTLY_WORKER_ID"]
    worker = api.call("GET", f"/v1/docker/worker/{worker_id}")
    print(f"Starting worker with id {worker_id}", flush=True)
    api.call("PUT", f"/v1/docker/worker/{worker_id}", {"state": "IDLE"})
    print("Worker started. Waiting for jobs...", flush=True)
    scheduled = wait_for_run(
        api, worker_id, worker["labels"], float(os.environ.get("STANDIN_WORKER_PATIENCE_S", "300"))
    )
    if scheduled is None:
        print("no job came", flush=True)
        return 1
    code = work(api, worker_id, scheduled)
    print(f"job done (exit {code}); shutting down as shutdown_when_job_finished asks", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
