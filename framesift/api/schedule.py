"""The ActiveLearningSchedule resource (framesift.dev/v1alpha1): a CronJob for runs.

Each tick creates an ActiveLearningRun from `runTemplate` (an ActiveLearningRun spec, validated
with the same models), owned by the schedule and labelled with its name. Scheduled runs consider
only new videos and count earlier picks as datapool unless the template says otherwise.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from framesift.api.models import ApiModel, Condition, ObjectMeta, RunSpec

SCHEDULE_KIND = "ActiveLearningSchedule"
SCHEDULE_PLURAL = "activelearningschedules"
RUN_SUFFIX_FORMAT = "%Y%m%d%H%M"  # <schedule>-<yyyymmddhhmm>, the tick in UTC (unique across DST)
MAX_SCHEDULE_NAME = 63 - 1 - 12  # a run's name (≤ 63) is the schedule's plus "-" and 12 digits


def cron_problem(expression: str) -> str | None:
    """None when croniter reads the expression (five fields, or @hourly/@daily/...)."""
    from croniter import croniter

    if len(expression.split()) not in (1, 5) or not croniter.is_valid(expression):
        return "use cron syntax: five fields (minute hour day-of-month month day-of-week), e.g. '0 2 * * *', or @daily"
    try:  # valid syntax that names no real day (30 February, 31 April) never fires
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (ValueError, KeyError, ArithmeticError) as err:  # CroniterBadDateError is a ValueError
        return f"{expression!r} never fires (no such day in any year: {err}); check the day of month and month"
    return None


# Zone names that resolve, but to whatever the machine is set to: a schedule must mean the same everywhere.
MACHINE_ZONES = ("localtime", "posixrules", "Factory")


class ScheduleSpec(ApiModel):
    schedule: str = Field(description="cron syntax, as a CronJob's: '0 2 * * *' is 02:00 every day")
    time_zone: str = Field(default="UTC", description="an IANA time zone, e.g. Europe/Berlin")
    suspend: bool = False
    concurrency_policy: Literal["Forbid", "Replace", "Allow"] = "Forbid"
    starting_deadline_seconds: int | None = Field(
        default=None, ge=1, description="a tick later than this is missed (reported), not run"
    )
    successful_runs_history_limit: int = Field(default=3, ge=0)
    failed_runs_history_limit: int = Field(default=1, ge=0)
    run_template: RunSpec

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        problem = cron_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value in MACHINE_ZONES:
            raise ValueError(f"{value!r} depends on the machine's settings: name an IANA zone (e.g. Europe/Berlin)")
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)"
            ) from None
        return value


class ScheduleMeta(ObjectMeta):
    @field_validator("name")
    @classmethod
    def _room_for_the_tick(cls, name: str) -> str:
        if len(name) > MAX_SCHEDULE_NAME:
            raise ValueError(f"at most {MAX_SCHEDULE_NAME} characters: each run is named <schedule>-<yyyymmddhhmm>")
        return name


class ActiveLearningSchedule(ApiModel):
    api_version: Literal["framesift.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ActiveLearningSchedule"]
    metadata: ScheduleMeta
    spec: ScheduleSpec
    status: dict[str, Any] | None = None


class ScheduleStatus(ApiModel):
    last_schedule_time: str | None = None
    next_schedule_time: str | None = None
    last_successful_run: str | None = None
    active: list[str] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)


def run_name(schedule_name: str, tick: datetime) -> str:
    return f"{schedule_name}-{tick.astimezone(UTC).strftime(RUN_SUFFIX_FORMAT)}"


def load_schedule(path: Path) -> tuple[dict[str, Any], ActiveLearningSchedule]:
    """The one ActiveLearningSchedule in a YAML file, as a document and validated."""
    from framesift.api.errors import ManifestError, validate_or_raise
    from framesift.api.manifest import safe_load_all

    docs = [d for d in safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    found = [d for d in docs if d.get("kind") == SCHEDULE_KIND]
    if len(found) != 1:
        raise ManifestError(str(path), [f"give exactly one {SCHEDULE_KIND} document (found {len(found)})"])
    schedule: ActiveLearningSchedule = validate_or_raise(ActiveLearningSchedule, found[0], str(path))
    return found[0], schedule
