"""Each fact defined once: the docs, the CRD and the health check follow the vocabulary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from framesift.api.crd import crd
from framesift.api.vocabulary import PIPELINE, REASONS, STAGE_NAMES, Phase, Reason, reason_table_markdown, stages_for
from framesift.jobs.pipeline import STAGE_RUNNERS

REPO = Path(__file__).resolve().parents[2]


def test_the_documented_reason_table_is_the_code() -> None:
    docs = (REPO / "docs" / "operator.md").read_text()
    assert reason_table_markdown() in docs, "docs/operator.md: paste framesift.api.vocabulary.reason_table_markdown()"
    assert set(REASONS) == set(Reason)
    for stage in PIPELINE:
        assert REASONS[stage.failed].fails_run and REASONS[stage.failed].stage == stage.name
    assert "Listing" not in {p.value for p in Phase}  # listing is part of Pending: the API's phases stay


def test_one_stage_list_drives_every_runner() -> None:
    assert STAGE_NAMES == ("list", "infer", "convert", "select", "export")
    assert tuple(STAGE_RUNNERS) == STAGE_NAMES
    assert [s.name for s in stages_for(False)] == ["list", "infer", "convert"]
    phases = [Phase.PENDING, Phase.INFERRING, Phase.CONVERTING, Phase.SELECTING, Phase.EXPORTING]
    assert [s.phase for s in PIPELINE] == phases


def test_the_crd_status_phase_enum_is_the_phase_list() -> None:
    status = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["phase"]["enum"] == [p.value for p in Phase]


def test_python_started_in_the_repo_root_gets_the_standard_library() -> None:
    """`operator/` has no __init__.py, so it never shadows the standard `operator` module."""
    code = "import enum, operator, sys; print(operator.__file__); assert operator.or_(1, 2) == 3"
    done = subprocess.run([sys.executable, "-"], input=code, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert not done.stdout.strip().startswith(str(REPO))
