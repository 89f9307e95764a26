"""ActiveLearningSchedule with a controllable clock: the schedule controller (the real
ScheduleReconciler) on the in-memory cluster, time moved by the test."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from framesift.api.errors import ManifestError, validate_or_raise
from framesift.api.schedule import ActiveLearningSchedule
from framesift.operator.memory import MemoryCluster
from framesift.operator.schedule import preview_schedule
from framesift.operator.schedule_runner import ScheduleReconciler

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "nightly-schedule.yaml"
NS = "fleet"


class Clock:
    def __init__(self, text: str):
        self.now = datetime.fromisoformat(text).astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, text: str) -> None:
        self.now = datetime.fromisoformat(text).astimezone(UTC)


def setup(created: str, **spec: object) -> tuple[MemoryCluster, ScheduleReconciler, Clock]:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"].update(spec)
    doc["metadata"].update(namespace=NS, uid="sched-uid", creationTimestamp=created, generation=1)
    cluster = MemoryCluster()
    cluster.schedules[(NS, doc["metadata"]["name"])] = doc
    clock = Clock(created)
    return cluster, ScheduleReconciler(cluster, clock), clock  # type: ignore[arg-type]


def runs(cluster: MemoryCluster) -> list[str]:
    return sorted(name for (_, name) in cluster.runs)


def status(cluster: MemoryCluster) -> dict:
    return cluster.schedules[(NS, "dashcams-nightly")]["status"]


def finish(cluster: MemoryCluster, name: str, phase: str = "Succeeded") -> None:
    cluster.runs[(NS, name)]["status"] = {"phase": phase}


def test_ticks_come_at_the_right_time_in_the_schedule_time_zone() -> None:
    cluster, schedules, clock = setup("2026-11-29T12:00:00Z")  # 02:00 Europe/Berlin is 01:00 UTC in winter
    schedules.reconcile(NS, "dashcams-nightly")
    assert runs(cluster) == [] and status(cluster)["nextScheduleTime"] == "2026-11-30T01:00:00Z"
    clock.set("2026-11-30T00:59:59Z")
    schedules.reconcile(NS, "dashcams-nightly")
    assert runs(cluster) == []
    clock.set("2026-11-30T01:00:30Z")
    schedules.reconcile(NS, "dashcams-nightly")
    assert runs(cluster) == ["dashcams-nightly-202611300100"]
    run = cluster.runs[(NS, "dashcams-nightly-202611300100")]
    assert run["metadata"]["labels"] == {"framesift.dev/schedule": "dashcams-nightly"}
    assert run["metadata"]["ownerReferences"][0]["uid"] == "sched-uid"
    assert run["spec"]["input"]["newOnly"] is True and run["spec"]["selector"]["datapool"] is True
    assert status(cluster)["lastScheduleTime"] == "2026-11-30T01:00:00Z"
    assert status(cluster)["active"] == ["dashcams-nightly-202611300100"]
    assert (
        "Normal",
        "RunScheduled",
        "created run dashcams-nightly-202611300100 for the tick of 2026-11-30T01:00:00Z",
    ) in cluster.events
    # summer time: 02:00 Berlin is 00:00 UTC
    cluster, schedules, clock = setup("2026-07-01T12:00:00Z")
    clock.set("2026-07-02T00:00:05Z")
    schedules.reconcile(NS, "dashcams-nightly")
    assert runs(cluster) == ["dashcams-nightly-202607020000"]


def test_forbid_skips_a_tick_while_a_run_is_active_and_says_so() -> None:
    cluster, schedules, clock = setup("2026-11-29T12:00:00Z")
    clock.set("2026-11-30T01:00:10Z")
    schedules.reconcile(NS, "dashcams-nightly")
    clock.set("2026-12-01T01:00:10Z")  # the first run is still going
    schedules.reconcile(NS, "dashcams-nightly")
    assert runs(cluster) == ["dashcams-nightly-202611300100"]
    assert any(r == "TickSkipped" and "dashcams-nightly-202611300100 still active" in m for _, r, m in cluster.events)
    finish(cluster, "dashcams-nightly-202611300100")
    clock.set("2026-12-02T01:00:10Z")
    schedules.reconcile(NS, "dashcams-nightly")
    assert runs(cluster)[-1] == "dashcams-nightly-202612020100"
    assert status(cluster)["lastSuccessfulRun"] == "dashcams-nightly-202611300100"


def test_replace_deletes_the_active_run_and_allow_keeps_it() -> None:
    cluster, schedules, clock = setup("2026-11-29T12:00:00Z", concurrencyPolicy="Replace")
    clock.set("2026-11-30T01:00:10Z")
    schedules.reconcile(NS, "dashcams-nightly")
    clock.set("2026-12-01T01:00:10Z")
    schedules.reconcile(NS, "dashcams-nightly")
    assert runs(cluster) == ["dashcams-nightly-202612010100"]
    assert any(r == "RunReplaced" for _, r, _m in cluster.events)
    cluster, schedules, clock = setup("2026-11-29T12:00:00Z", concurrencyPolicy="Allow")
    for day in ("30", "01"):
        clock.set(f"2026-{'11' if day == '30' else '12'}-{day}T01:00:10Z")
        schedules.reconcile(NS, "dashcams-nightly")
    assert len(runs(cluster)) == 2 and len(status(cluster)["active"]) == 2


def test_history_limits_prune_the_oldest_finished_runs() -> None:
    cluster, schedules, clock = setup("2026-11-29T12:00:00Z", successfulRunsHistoryLimit=2, failedRunsHistoryLimit=1)
    start = datetime(2026, 11, 30, 1, 0, 10, tzinfo=UTC)
    for day in range(6):
        clock.now = start + timedelta(days=day)
        schedules.reconcile(NS, "dashcams-nightly")
        name = runs(cluster)[-1]
        finish(cluster, name, "Failed" if day in (1, 3) else "Succeeded")
    schedules.reconcile(NS, "dashcams-nightly")
    assert runs(cluster) == [
        "dashcams-nightly-202612030100",
        "dashcams-nightly-202612040100",
        "dashcams-nightly-202612050100",
    ]


def test_suspend_stops_ticks_and_a_late_tick_is_reported_missed() -> None:
    cluster, schedules, clock = setup("2026-11-29T12:00:00Z", suspend=True)
    clock.set("2026-12-03T01:00:10Z")
    schedules.reconcile(NS, "dashcams-nightly")
    assert runs(cluster) == [] and status(cluster).get("nextScheduleTime") is None
    assert status(cluster)["conditions"][0]["reason"] == "Suspended"

    cluster, schedules, clock = setup("2026-11-29T12:00:00Z")  # startingDeadlineSeconds: 3600
    clock.set("2026-11-30T02:30:00Z")  # the operator was down from 01:00 to 02:30 UTC
    schedules.reconcile(NS, "dashcams-nightly")
    assert runs(cluster) == []
    assert any(k == "Warning" and r == "TickMissed" and "5400s late" in m for k, r, m in cluster.events)
    schedules.reconcile(NS, "dashcams-nightly")  # reported once
    assert sum(r == "TickMissed" for _, r, _m in cluster.events) == 1


def test_a_restart_between_ticks_neither_duplicates_nor_drops_a_tick() -> None:
    cluster, schedules, clock = setup("2026-11-29T12:00:00Z")
    clock.set("2026-11-30T01:00:10Z")
    before = copy.deepcopy(cluster.schedules)
    schedules.reconcile(NS, "dashcams-nightly")
    # the operator died after creating the run, before its status patch: the status is as before
    cluster.schedules = before
    fresh = ScheduleReconciler(cluster, clock)  # type: ignore[arg-type]
    fresh.reconcile(NS, "dashcams-nightly")
    fresh.reconcile(NS, "dashcams-nightly")
    assert runs(cluster) == ["dashcams-nightly-202611300100"]
    assert status(cluster)["lastScheduleTime"] == "2026-11-30T01:00:00Z"
    finish(cluster, "dashcams-nightly-202611300100")
    clock.set("2026-12-01T01:20:00Z")  # down over the next tick, back within the deadline
    ScheduleReconciler(cluster, clock).reconcile(NS, "dashcams-nightly")  # type: ignore[arg-type]
    assert runs(cluster)[-1] == "dashcams-nightly-202612010100"


def test_invalid_schedules_are_refused_with_their_field() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    for field, value, expected in (
        ("schedule", "0 2 * *", "spec.schedule"),
        ("timeZone", "Mars/Olympus", "spec.timeZone"),
        ("timeZone", "localtime", "depends on the machine"),
        ("schedule", "0 0 30 2 *", "never fires"),
        ("schedule", "0 0 31 4 *", "never fires"),
        ("concurrencyPolicy", "Sometimes", "spec.concurrencyPolicy"),
    ):
        bad = copy.deepcopy(doc)
        bad["spec"][field] = value
        with pytest.raises(ManifestError, match=expected.replace(".", r"\.")):
            validate_or_raise(ActiveLearningSchedule, bad, "s.yaml")
    bad = copy.deepcopy(doc)
    bad["spec"]["runTemplate"]["model"]["wieghts"] = "x.pt"
    with pytest.raises(ManifestError, match=r"spec\.runTemplate\.model"):
        validate_or_raise(ActiveLearningSchedule, bad, "s.yaml")


def test_preview_prints_the_next_five_ticks_and_the_next_run() -> None:
    preview = preview_schedule(EXAMPLE, 5, datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    assert [t["utc"] for t in preview["nextTicks"]] == [
        "2026-03-28T01:00:00Z",
        "2026-03-29T01:00:00Z",  # 02:00 does not exist on the night clocks go forward: 03:00 CEST
        "2026-03-30T00:00:00Z",
        "2026-03-31T00:00:00Z",
        "2026-04-01T00:00:00Z",
    ]
    assert preview["nextRun"]["metadata"]["name"] == "dashcams-nightly-202603280100"


def test_counts_below_one_are_refused_in_one_line() -> None:
    import subprocess
    import sys
    from pathlib import Path

    framesift = str(Path(sys.executable).parent / "framesift")
    for command in (["schedule", "preview", str(EXAMPLE), "--count", "0"], ["plan", str(EXAMPLE), "--videos", "-5"]):
        result = subprocess.run([framesift, *command], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "must be at least 1" in result.stderr and "Traceback" not in result.stderr
