"""What an ActiveLearningSchedule does now, as a pure function of its body, its runs and the time.

CronJob's semantics: only the latest due tick runs (older missed ones are not caught up);
a tick later than startingDeadlineSeconds is reported missed; Forbid skips a tick while a run
is active, Replace deletes the active run first, Allow just adds one. Restart-safe: a tick's run
has a deterministic name (`<schedule>-<yyyymmddhhmm>`, UTC), so a tick retried after a crash
finds its run instead of making a second, and lastScheduleTime is written only with the run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from framesift.api.models import API_VERSION, KIND
from framesift.api.schedule import SCHEDULE_KIND, ScheduleSpec, load_schedule, run_name
from framesift.api.vocabulary import TERMINAL_PHASES, Phase, Reason
from framesift.operator.reconcile import set_condition

LABEL_SCHEDULE = "framesift.dev/schedule"
ANNOTATION_SCHEDULED_AT = "framesift.dev/scheduled-at"
SCHEDULING = "Scheduling"  # the schedule's condition type


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if text else None


def latest_tick(spec: ScheduleSpec, now: datetime) -> datetime:
    """The latest tick at or before `now` (in the schedule's time zone)."""
    local = now.astimezone(ZoneInfo(spec.time_zone)) + timedelta(seconds=1)  # a tick exactly now counts
    tick: datetime = croniter(spec.schedule, local).get_prev(datetime)
    return tick.astimezone(UTC)


def next_ticks(spec: ScheduleSpec, after: datetime, count: int) -> list[datetime]:
    it = croniter(spec.schedule, after.astimezone(ZoneInfo(spec.time_zone)))
    return [it.get_next(datetime) for _ in range(count)]


@dataclass
class ScheduleDecision:
    create: dict[str, Any] | None = None  # the run to create
    delete: list[str] = field(default_factory=list)  # runs to delete (Replace, history limits)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def run_document(body: dict[str, Any], tick: datetime) -> dict[str, Any]:
    """The tick's run: the template's spec, new videos only and earlier picks as datapool unless
    the template says otherwise, owned by the schedule (deleting it deletes its runs)."""
    meta = body["metadata"]
    spec = copy.deepcopy(body["spec"]["runTemplate"])
    spec.setdefault("input", {}).setdefault("newOnly", True)
    spec.setdefault("selector", {}).setdefault("datapool", True)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": run_name(meta["name"], tick),
            "namespace": meta["namespace"],
            "labels": {LABEL_SCHEDULE: meta["name"]},
            "annotations": {ANNOTATION_SCHEDULED_AT: stamp(tick)},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": SCHEDULE_KIND,
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def _phase(run: dict[str, Any]) -> str:
    return str((run.get("status") or {}).get("phase") or Phase.PENDING)


def _newest_first(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(runs, key=lambda r: str(r["metadata"]["name"]), reverse=True)  # names sort by tick


def decide_schedule(
    body: dict[str, Any], spec: ScheduleSpec, runs: list[dict[str, Any]], now: datetime
) -> ScheduleDecision:
    """`runs`: the schedule's own runs (labelled and owned by it)."""
    status = dict(body.get("status") or {})
    decision = ScheduleDecision(status=status)
    active = [r for r in runs if _phase(r) not in TERMINAL_PHASES]
    succeeded = _newest_first([r for r in runs if _phase(r) == Phase.SUCCEEDED])
    failed = _newest_first([r for r in runs if _phase(r) == Phase.FAILED])
    for old in succeeded[spec.successful_runs_history_limit :] + failed[spec.failed_runs_history_limit :]:
        decision.delete.append(old["metadata"]["name"])

    generation = body["metadata"].get("generation")
    conditions = status.get("conditions", [])
    if spec.suspend:
        status["conditions"] = set_condition(
            conditions, SCHEDULING, "False", Reason.SCHEDULE_SUSPENDED, "spec.suspend is set: no ticks", generation
        )
        status["nextScheduleTime"] = None
    else:
        status["conditions"] = set_condition(
            conditions, SCHEDULING, "True", Reason.SCHEDULE_ACTIVE, f"{spec.schedule} ({spec.time_zone})", generation
        )
        status["nextScheduleTime"] = stamp(next_ticks(spec, now, 1)[0])
        created = parse_time(body["metadata"].get("creationTimestamp")) or now
        last = parse_time(status.get("lastScheduleTime")) or created
        tick = latest_tick(spec, now)
        if tick > last:
            _tick(decision, body, spec, tick, now, active)
    deleting = set(decision.delete)
    status["active"] = sorted(r["metadata"]["name"] for r in active if r["metadata"]["name"] not in deleting)
    if decision.create:
        status["active"] = sorted([*status["active"], decision.create["metadata"]["name"]])
    if succeeded:
        status["lastSuccessfulRun"] = succeeded[0]["metadata"]["name"]
    return decision


def _tick(
    decision: ScheduleDecision,
    body: dict[str, Any],
    spec: ScheduleSpec,
    tick: datetime,
    now: datetime,
    active: list[dict[str, Any]],
) -> None:
    name = run_name(body["metadata"]["name"], tick)
    decision.status["lastScheduleTime"] = stamp(tick)
    late = (now - tick).total_seconds()
    if spec.starting_deadline_seconds is not None and late > spec.starting_deadline_seconds:
        decision.events.append(
            (
                "Warning",
                Reason.TICK_MISSED,
                f"missed the tick of {stamp(tick)}: {late:.0f}s late, more than startingDeadlineSeconds "
                f"({spec.starting_deadline_seconds}); no run for it",
            )
        )
        return
    others = [r for r in active if r["metadata"]["name"] != name]
    if others and spec.concurrency_policy == "Forbid":
        names = ", ".join(r["metadata"]["name"] for r in others)
        decision.events.append(
            ("Normal", Reason.TICK_SKIPPED, f"skipped the tick of {stamp(tick)}: {names} still active (Forbid)")
        )
        return
    if others and spec.concurrency_policy == "Replace":
        for run in others:
            decision.delete.append(run["metadata"]["name"])
            decision.events.append(
                ("Normal", Reason.RUN_REPLACED, f"deleted the active run {run['metadata']['name']} (Replace)")
            )
    decision.create = run_document(body, tick)
    decision.events.append(("Normal", Reason.RUN_SCHEDULED, f"created run {name} for the tick of {stamp(tick)}"))


def preview_schedule(path: Path, count: int = 5, now: datetime | None = None) -> dict[str, Any]:
    """The next `count` ticks (in the schedule's zone and UTC) and the run the next tick creates."""
    document, schedule = load_schedule(path)
    ticks = next_ticks(schedule.spec, now or datetime.now(tz=UTC), count)
    body = {**document, "metadata": {"namespace": "default", **document["metadata"]}}
    return {
        "schedule": schedule.spec.schedule,
        "timeZone": schedule.spec.time_zone,
        "nextTicks": [{"local": t.isoformat(), "utc": t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")} for t in ticks],
        "nextRun": run_document(body, ticks[0]),
    }
