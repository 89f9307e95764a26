"""The run state machine, on plain dicts: what to create next, and the status it publishes."""

from __future__ import annotations

from framesift.api.vocabulary import PIPELINE as STAGES
from framesift.operator.reconcile import decide, parse_indexes

VIDEOS = ["a.mp4", "b.mp4", "c.mp4"]


def job(**status: object) -> dict:
    return {"metadata": {"name": "j"}, "spec": {}, "status": status}


def done() -> dict:
    return job(conditions=[{"type": "Complete", "status": "True"}])


def test_index_notation() -> None:
    assert parse_indexes("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert parse_indexes("") == set() and parse_indexes(None) == set()


def test_creates_each_child_in_order_once() -> None:
    d = decide(STAGES, {}, 1, False, None, {})
    assert d.create == ["config"] and d.status["phase"] == "Pending"
    d = decide(STAGES, d.status, 1, True, VIDEOS, {})
    assert d.create == ["infer"] and d.status["phase"] == "Inferring" and d.status["videos"]["total"] == 3
    d = decide(STAGES, d.status, 1, True, VIDEOS, {"infer": job(completedIndexes="0-1")})
    assert d.create == [] and d.status["videos"]["done"] == 2
    d = decide(STAGES, d.status, 1, True, VIDEOS, {"infer": job(completedIndexes="0-2")})
    assert d.create == ["convert"] and d.status["phase"] == "Converting"
    jobs = {"infer": job(completedIndexes="0-2"), "convert": done(), "select": done()}
    d = decide(STAGES, d.status, 1, True, VIDEOS, jobs)
    assert d.create == ["export"] and d.status["phase"] == "Exporting"
    jobs["export"] = done()
    d = decide(STAGES, d.status, 1, True, VIDEOS, jobs)
    assert d.create == [] and d.status["phase"] == "Succeeded" and d.read_results
    assert any(c["type"] == "Succeeded" and c["status"] == "True" for c in d.status["conditions"])
    assert decide(STAGES, d.status, 1, True, VIDEOS, jobs).create == []  # terminal: nothing more


def test_a_failed_video_is_named_and_the_run_goes_on() -> None:
    status = {"phase": "Inferring"}
    infer = job(
        completedIndexes="0,2",
        failedIndexes="1",
        conditions=[{"type": "Failed", "status": "True", "reason": "FailedIndexes"}],
    )
    d = decide(STAGES, status, 1, True, VIDEOS, {"infer": infer})
    assert d.create == ["convert"]
    assert d.status["videos"] == {
        "total": 3,
        "done": 2,
        "failed": 1,
        "failedVideos": [{"name": "b.mp4", "reason": "inference failed (see the index's pod)"}],
    }
    assert any(e[1] == "VideosFailed" and "b.mp4" in e[2] for e in d.events)


def test_every_video_failing_fails_the_run() -> None:
    d = decide(STAGES, {"phase": "Inferring"}, 1, True, VIDEOS, {"infer": job(failedIndexes="0-2")})
    assert d.status["phase"] == "Failed" and d.events[0][:2] == ("Warning", "AllVideosFailed")


def test_a_failed_stage_job_fails_the_run_with_its_reason() -> None:
    jobs = {
        "infer": job(completedIndexes="0-2"),
        "convert": job(
            conditions=[
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
        ),
    }
    d = decide(STAGES, {"phase": "Converting"}, 2, True, VIDEOS, jobs)
    assert d.status["phase"] == "Failed" and "BackoffLimitExceeded" in d.status["message"]
    failed = next(c for c in d.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "ConvertFailed" and failed["observedGeneration"] == 2
    assert next(c for c in d.status["conditions"] if c["type"] == "Succeeded")["status"] == "False"


def test_suspended_jobs_wait_for_kueue() -> None:
    infer = {"metadata": {"name": "r-infer"}, "spec": {"suspend": True}, "status": {}}
    d = decide(STAGES, {"phase": "Inferring"}, 1, True, VIDEOS, {"infer": infer})
    assert d.create == [] and "waiting for admission" in d.status["message"]
