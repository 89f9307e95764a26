"""Prometheus metrics of the operator: runs by phase, stage durations, Job failures."""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from framesift.api.vocabulary import REASONS, Phase, Reason

RUNS = Gauge("framesift_runs", "ActiveLearningRuns by phase", ["phase"])
STAGE_SECONDS = Histogram(
    "framesift_stage_duration_seconds",
    "Wall time of a finished stage Job",
    ["stage"],
    buckets=(10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400),
)
JOB_FAILURES = Counter("framesift_job_failures_total", "Runs that failed, by the stage they failed in", ["stage"])

_phases: dict[tuple[str, str], str] = {}


def observe_phase(namespace: str, name: str, phase: str | None) -> None:
    key = (namespace, name)
    if phase is None:
        _phases.pop(key, None)
    else:
        _phases[key] = phase
    counts: dict[str, int] = {}
    for value in _phases.values():
        counts[value] = counts.get(value, 0) + 1
    for phase_name in Phase:
        RUNS.labels(phase=phase_name.value).set(counts.get(phase_name, 0))


def observe_reason(reason: str) -> None:
    """Count a run failure under the stage its reason belongs to (REASONS says which)."""
    try:
        info = REASONS[Reason(reason)]
    except ValueError:  # a phase change, not a reason of ours
        return
    if info.fails_run:
        JOB_FAILURES.labels(stage=info.stage).inc()


_timed: set[str] = set()


def _seconds(start: str, end: str) -> float:
    from datetime import datetime

    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds()


def observe_jobs(jobs: dict[str, dict[str, Any]]) -> None:
    """Record each finished stage Job's duration once."""
    for stage, job in jobs.items():
        status = job.get("status") or {}
        key = f"{job['metadata'].get('namespace')}/{job['metadata']['name']}/{job['metadata'].get('uid')}"
        if key in _timed or not status.get("startTime") or not status.get("completionTime"):
            continue
        _timed.add(key)
        with contextlib.suppress(ValueError):
            STAGE_SECONDS.labels(stage=stage).observe(_seconds(status["startTime"], status["completionTime"]))


def serve(port: int) -> None:
    start_http_server(port)
