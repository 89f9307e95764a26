"""The Argo CD health check (Lua), run in a real Lua runtime against run objects."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lupa import LuaRuntime

from framesift.api.vocabulary import WAITING_FOR_ADMISSION, Phase

REPO = Path(__file__).resolve().parents[2]
SCRIPT = (REPO / "charts" / "framesift" / "argocd-health.lua").read_text()


def health(status: dict | None) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    check = lua.eval(f"function(obj)\n{SCRIPT}\nend")
    obj = lua.table_from({"status": lua.table_from(status)} if status is not None else {}, recursive=True)
    result = check(obj)
    return str(result["status"]), str(result["message"])


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "Progressing"),
        ({"phase": "Inferring"}, "Progressing"),
        ({"phase": "Inferring", "message": "Job r-infer is waiting for admission (suspended, Kueue)"}, "Suspended"),
        ({"phase": "Succeeded", "selected": 40}, "Healthy"),
        ({"phase": "Failed", "message": "convert Job failed"}, "Degraded"),
    ],
)
def test_health_by_phase(status: dict | None, expected: str) -> None:
    assert health(status)[0] == expected


def test_every_phase_has_a_health() -> None:
    expected = {Phase.SUCCEEDED: "Healthy", Phase.FAILED: "Degraded"}
    for phase in Phase:
        assert health({"phase": phase.value})[0] == expected.get(phase, "Progressing"), phase
    assert WAITING_FOR_ADMISSION in SCRIPT


def test_messages_and_docs_copy() -> None:
    assert health({"phase": "Succeeded", "selected": 40})[1] == "selected 40 frames"
    docs = (REPO / "docs" / "operator.md").read_text()
    embedded = re.search(r"ActiveLearningRun: \|\n(.*?)\n```", docs, re.S)
    assert embedded is not None
    body = "\n".join(line[2:] for line in embedded.group(1).splitlines())
    assert body.strip() in SCRIPT


SCHEDULE_SCRIPT = (REPO / "charts" / "framesift" / "argocd-health-schedule.lua").read_text()


def schedule_health(obj: dict) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    check = lua.eval(f"function(obj)\n{SCHEDULE_SCRIPT}\nend")
    result = check(lua.table_from(obj, recursive=True))
    return str(result["status"]), str(result["message"])


def test_schedule_health() -> None:
    scheduling = {"type": "Scheduling", "status": "True", "reason": "Scheduling"}
    healthy = {"spec": {}, "status": {"conditions": [scheduling], "nextScheduleTime": "2026-12-01T01:00:00Z"}}
    assert schedule_health(healthy) == ("Healthy", "next tick 2026-12-01T01:00:00Z")
    assert schedule_health({"spec": {"suspend": True}})[0] == "Suspended"
    assert schedule_health({"spec": {}})[0] == "Progressing"
    invalid = {"type": "Scheduling", "status": "False", "reason": "InvalidSpec", "message": "spec.schedule: use cron"}
    assert schedule_health({"spec": {}, "status": {"conditions": [invalid]}}) == ("Degraded", "spec.schedule: use cron")
    docs = (REPO / "docs" / "operator.md").read_text()
    embedded = re.search(r"ActiveLearningSchedule: \|\n(.*?)\n```", docs, re.S)
    assert embedded is not None
    assert "\n".join(line[2:] for line in embedded.group(1).splitlines()).strip() in SCHEDULE_SCRIPT
