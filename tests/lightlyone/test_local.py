"""`framesift run` with engine lightlyone on one machine: the real lightly==1.5.26 client against
the stand-in API, a stand-in Worker started from the printed `docker run` line's worker id, the
output on a real S3 server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from framesift.api.models import Location
from framesift.jobs.storage import open_storage
from tests.helpers import write_manifest
from tests.lightlyone.fixtures import SELECTION, TOKEN, WorkerStarter, lightly_run, upload_videos
from tests.lightlyone.standin_api import StandinApi

pytestmark = pytest.mark.slow
FRAMESIFT = str(Path(sys.executable).parent / "framesift")


def camel(cfg: object, keep: bool = False) -> object:
    if isinstance(cfg, list):
        return [camel(v) for v in cfg]
    if not isinstance(cfg, dict) or keep:
        return cfg
    out = {}
    for key, value in cfg.items():
        head, *rest = key.split("_")
        name = key if key == "stopping_condition_minimum_distance" else head + "".join(p.title() for p in rest)
        out[name] = camel(value, keep=key == "target")
    return out


def run_cli(path: Path, s3_server, api: StandinApi, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **s3_server.env(), "LIGHTLY_TOKEN": TOKEN}
    return subprocess.run(
        [FRAMESIFT, "run", str(path), "--no-progress"], env=env, capture_output=True, text=True, timeout=timeout
    )


def output_store(s3_server, dst: str):
    return open_storage(
        Location(uri=f"s3://{dst}/lightly/", pathStyle=True, endpointUrl=s3_server.endpoint),
        credentials={"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key},
    )


def test_local_run_drives_a_worker_through_the_api(
    s3_server, real_videos: Path, lightly_api: StandinApi, tmp_path: Path
) -> None:
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    upload_videos(s3_server, src, real_videos, tmp_path)
    path = write_manifest(tmp_path / "run.yaml", lightly_run("l1", src, dst, s3_server.endpoint, lightly_api.url))
    worker = WorkerStarter(lightly_api, tmp_path / "worker.log")
    result = run_cli(path, s3_server, lightly_api)
    assert worker.stop() == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert result.returncode == 0, result.stderr[-4000:]

    api = lightly_api
    assert len(api.calls_to("POST", r"/v1/datasets")) == 1
    puts = [c.body for c in api.calls_to("PUT", r"/v1/datasets/[a-f0-9]{24}/datasource")]
    assert {(p["purpose"], p["type"], p["fullPath"]) for p in puts} == {
        ("INPUT", "OBS", f"s3://{src}/videos/"),
        ("LIGHTLY", "OBS", f"s3://{dst}/lightly/"),
    }
    assert all(p["obsEndpoint"] == s3_server.endpoint for p in puts)
    (schedule,) = api.calls_to("POST", r"/v1/datasets/[a-f0-9]{24}/docker/worker/schedule")
    (worker,) = api.calls_to("POST", r"/v1/docker/worker")
    assert schedule.body["runsOn"] == worker.body["labels"] == ["framesift-local-l1"]
    (config,) = api.calls_to("POST", r"/v1/docker/worker/config/vX")
    selection = dict(config.body["config"]["selection"])
    assert selection.pop("autoTasks") == []
    assert selection == camel(SELECTION), "spec.selection reaches the Worker verbatim"
    assert config.body["config"]["docker"]["shutdownWhenJobFinished"] is True
    assert config.body["config"]["docker"]["corruptnessCheck"] == {"corruptionThreshold": 0.1}
    assert not api.state.workers, "the Worker is deregistered at the end"

    worker_id = worker_id_of(api)
    assert f'LIGHTLY_WORKER_ID="{worker_id}"' in result.stderr and "docker run" in result.stderr

    out = output_store(s3_server, dst)
    selected = json.loads(out.read_text("runs/l1/selected.json"))
    assert selected["engine"] == "lightlyone" and len(selected["selected"]) == SELECTION["n_samples"]
    rows = json.loads(out.read_text("runs/l1/export.json"))
    assert [r["fileName"] for r in rows] == [p["fileName"] for p in selected["selected"]]
    assert all(r["readUrl"].startswith(api.url) and r["datasourceUrl"].endswith(r["fileName"]) for r in rows)
    for row in rows:  # the Worker's extracted frames, copied
        assert out.read_bytes(f"frames/{row['fileName']}") == out.read_bytes(f".lightly/frames/{row['fileName']}")
    assert out.read_bytes("runs/l1/lightlyone-report.pdf").startswith(b"%PDF")
    for key in ("runs/l1/report.html", "runs/l1/report.pdf", "runs/l1/coco.json", "runs/l1/labelstudio.json"):
        assert out.exists(key), key
    everything = (
        result.stdout
        + result.stderr
        + "".join(out.read_text(o.key) for o in out.list("") if o.key.endswith((".json", ".html")))
    )
    assert TOKEN not in everything


def worker_id_of(api: StandinApi) -> str:
    (call,) = [c for c in api.state.calls if c.method == "PUT" and c.path.startswith("/v1/docker/worker/")]
    return call.path.rsplit("/", 1)[-1]


def test_no_worker_fails_after_the_pickup_timeout_with_the_docker_run_line(
    s3_server, real_videos: Path, lightly_api: StandinApi, tmp_path: Path
) -> None:
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    upload_videos(s3_server, src, real_videos, tmp_path)
    doc = lightly_run("l2", src, dst, s3_server.endpoint, lightly_api.url, pickupTimeout="3s")
    result = run_cli(write_manifest(tmp_path / "run.yaml", doc), s3_server, lightly_api)
    assert result.returncode != 0
    (_worker,) = lightly_api.calls_to("POST", r"/v1/docker/worker")
    assert "pickupTimeout 3s" in result.stderr and "docker run" in result.stderr
    assert 'LIGHTLY_TOKEN="$LIGHTLY_TOKEN"' in result.stderr and TOKEN not in result.stderr + result.stdout
    (scheduled,) = lightly_api.state.scheduled.values()
    assert scheduled["state"] == "CANCELED" and not lightly_api.state.workers


def test_rejected_token_fails_before_any_schedule(
    s3_server, real_videos: Path, lightly_api: StandinApi, tmp_path: Path
) -> None:
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    upload_videos(s3_server, src, real_videos, tmp_path)
    lightly_api.state.token = "another-token"  # the account's token was rotated
    doc = lightly_run("l3", src, dst, s3_server.endpoint, lightly_api.url)
    result = run_cli(write_manifest(tmp_path / "run.yaml", doc), s3_server, lightly_api)
    assert result.returncode != 0
    assert "rejected the token (403)" in result.stderr and "$LIGHTLY_TOKEN" in result.stderr
    assert not lightly_api.calls_to("POST", r"/v1/datasets/[a-f0-9]{24}/docker/worker/schedule")
    assert TOKEN not in result.stderr + result.stdout
