"""What the LightlyOne tests share: a stand-in API, buckets with videos, a run manifest."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framesift.api.models import Location
from framesift.jobs.storage import open_storage
from tests.helpers import manifest, synthetic_video
from tests.lightlyone.standin_api import StandinApi

TOKEN = "lightly-token-7d1e5c0a9b"  # planted: must never appear outside the API's own wire
SELECTION = {
    "n_samples": 6,
    "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {
            "input": {"type": "SCORES", "task": "yolov8_detection", "score": "objectness_least_confidence"},
            "strategy": {"type": "WEIGHTS"},
        },
    ],
}
WORKER = [sys.executable, "-m", "tests.lightlyone.standin_worker"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lightly_api() -> Iterator[StandinApi]:
    api = StandinApi(TOKEN)
    yield api
    api.stop()


def upload_videos(s3_server: Any, bucket: str, real_videos: Path, tmp_path: Path) -> None:
    store = open_storage(
        Location(uri=f"s3://{bucket}/videos/", pathStyle=True, endpointUrl=s3_server.endpoint),
        credentials={"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key},
    )
    store.upload_file(real_videos / "bikes.mp4", "bikes.mp4")
    store.upload_file(synthetic_video(tmp_path / "square.mp4", frames=30, seed=3), "yard/square.mp4")


def lightly_run(name: str, src: str, dst: str, endpoint: str, api_url: str, **selector: Any) -> dict[str, Any]:
    location = {"pathStyle": True, "endpointUrl": endpoint}
    doc = manifest(
        name,
        f"s3://{src}/videos/",
        f"s3://{dst}/lightly/",
        input=dict(location),
        output=dict(location),
        selection=SELECTION,
        selector={
            "engine": "lightlyone",
            "token": {"name": "lightly-token", "key": "token"},
            "serverLocation": api_url,
            "pollInterval": "1s",
            **selector,
        },
    )
    return doc


def worker_env(api: StandinApi, worker_id: str) -> dict[str, str]:
    return {
        **os.environ,
        "LIGHTLY_TOKEN": TOKEN,
        "LIGHTLY_WORKER_ID": worker_id,
        "LIGHTLY_SERVER_LOCATION": api.url,
        "PYTHONPATH": str(REPO),
    }


class WorkerStarter:
    """Starts the stand-in Worker as soon as a Worker is registered: what a person does with the
    `docker run` line `framesift run` prints."""

    def __init__(self, api: StandinApi, log: Path):
        self.api, self.log = api, log
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            if self.api.state.workers:
                worker_id = next(iter(self.api.state.workers))
                with self.log.open("wb") as out:
                    self.proc = subprocess.Popen(WORKER, env=worker_env(self.api, worker_id), stdout=out, stderr=out)
                return

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join(5)
        if self.proc is None:
            return None
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None
