"""An ActiveLearningSchedule under the real operator process (kopf against kmock, the test
kubelet, a real S3 server) with a controllable clock: ticks create runs at the right times; a
tick with no new video succeeds at once without an inference Job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client

from framesift.api.models import Location
from framesift.jobs.storage import open_storage
from framesift.operator.schedule import stamp
from tests.helpers import free_port, synthetic_video
from tests.operator.harness import Cluster, allowed, operator_calls, wait_for
from tests.operator.test_operator import NS, SCHEDULE_RULES, chart_rules, s3_credentials, s3_run

pytestmark = pytest.mark.slow


def test_ticks_create_runs_and_a_tick_with_nothing_new_runs_no_job(cluster: Cluster, s3_server, tmp_path: Path) -> None:
    clock = tmp_path / "clock"
    clock.write_text(stamp(datetime.now(tz=UTC)))  # the schedule is created at the real time
    cluster.operator.stop()
    cluster.operator.env["FRAMESIFT_CLOCK_FILE"] = str(clock)
    cluster.operator.start(free_port(), free_port())

    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    store = open_storage(
        Location(uri=f"s3://{src}/videos/", pathStyle=True, endpointUrl=s3_server.endpoint),
        credentials={"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key},
    )
    for i in range(2):
        store.upload_file(synthetic_video(tmp_path / f"cam{i}.mp4", frames=20, seed=i), f"cam{i}.mp4")
    s3_credentials(cluster, s3_server)
    template = s3_run(
        "unused",
        src,
        dst,
        selection={
            "n_samples": 2,
            "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}],
        },
    )["spec"]
    schedule = {
        "apiVersion": "framesift.dev/v1alpha1",
        "kind": "ActiveLearningSchedule",
        "metadata": {"name": "cams", "namespace": NS},
        "spec": {"schedule": "*/10 * * * *", "timeZone": "UTC", "runTemplate": template},
    }
    api = client.CustomObjectsApi(cluster.api)
    api.create_namespaced_custom_object("framesift.dev", "v1alpha1", NS, "activelearningschedules", schedule)

    def schedule_status() -> dict:
        body = api.get_namespaced_custom_object("framesift.dev", "v1alpha1", NS, "activelearningschedules", "cams")
        return dict(body.get("status") or {})

    created = api.get_namespaced_custom_object("framesift.dev", "v1alpha1", NS, "activelearningschedules", "cams")
    born = datetime.strptime(created["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    first = born.replace(second=0) + timedelta(minutes=10 - born.minute % 10)  # the first tick after creation
    second = first + timedelta(minutes=10)
    wait_for(lambda: schedule_status().get("nextScheduleTime") == stamp(first), 60, "the next tick time")
    assert not [j for j in cluster.jobs(NS)]

    clock.write_text(stamp(first + timedelta(seconds=5)))
    run = cluster.wait_phase(NS, f"cams-{first:%Y%m%d%H%M}", ("Succeeded", "Failed"))
    assert run["status"]["phase"] == "Succeeded", run["status"].get("message")
    assert run["status"]["videos"]["total"] == 2 and run["spec"]["input"]["newOnly"] is True

    clock.write_text(stamp(second + timedelta(seconds=5)))
    run = cluster.wait_phase(NS, f"cams-{second:%Y%m%d%H%M}", ("Succeeded", "Failed"))
    assert run["status"]["phase"] == "Succeeded" and run["status"]["message"].startswith("no new videos (2 inferred")
    stages = [
        j["metadata"]["labels"]["framesift.dev/stage"]
        for j in cluster.jobs(NS)
        if f"{second:%Y%m%d%H%M}" in j["metadata"]["name"]
    ]
    assert stages == ["list"], [j["metadata"]["name"] for j in cluster.jobs(NS)]
    status = wait_for(
        lambda: (s := schedule_status()).get("lastSuccessfulRun") == f"cams-{second:%Y%m%d%H%M}" and s, 60, "status"
    )
    assert status["lastScheduleTime"] == stamp(second) and status["active"] == []

    calls = operator_calls(cluster.server)
    rules = chart_rules()
    assert {c for c in SCHEDULE_RULES if c[0] != "delete"} <= calls
    assert [c for c in calls if not allowed(rules, *c)] == []
