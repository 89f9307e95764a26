"""The run state machine, on plain dicts: what to create next, and the status it publishes.

What the stages found reaches `decide` as their pods' summaries (termination messages)."""

from __future__ import annotations

from framesift.api.vocabulary import PIPELINE as STAGES
from framesift.operator.reconcile import decide, parse_indexes

LISTED = {"list": {"videos": 3, "videoList": "s3://out/.framesift/runs/r/videos.json"}}
INFERRING = {"phase": "Inferring", "videos": {"total": 3, "done": 0, "failed": 0, "failedVideos": []}}


def job(**status: object) -> dict:
    return {"metadata": {"name": "j"}, "spec": {}, "status": status}


def done() -> dict:
    return job(conditions=[{"type": "Complete", "status": "True"}])


def test_index_notation() -> None:
    assert parse_indexes("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert parse_indexes("") == set() and parse_indexes(None) == set()


def test_creates_each_child_in_order_once() -> None:
    d = decide(STAGES, {}, 1, False, {})
    assert d.create == ["config"] and d.status["phase"] == "Pending"
    d = decide(STAGES, d.status, 1, True, {})
    assert d.create == ["list"] and d.status["phase"] == "Pending"
    d = decide(STAGES, d.status, 1, True, {"list": job()})
    assert d.create == [] and d.status["phase"] == "Pending"  # listing
    d = decide(STAGES, d.status, 1, True, {"list": done()}, LISTED)
    assert d.create == ["infer"] and d.videos == 3
    assert d.status["phase"] == "Inferring" and d.status["videos"]["total"] == 3
    jobs = {"list": done(), "infer": job(completedIndexes="0-1")}
    d = decide(STAGES, d.status, 1, True, jobs)
    assert d.create == [] and d.status["videos"]["done"] == 2 and d.status["videos"]["total"] == 3
    jobs["infer"] = job(completedIndexes="0-2")
    d = decide(STAGES, d.status, 1, True, jobs)
    assert d.create == ["convert"] and d.status["phase"] == "Converting"
    jobs.update({"convert": done(), "select": done()})
    d = decide(STAGES, d.status, 1, True, jobs)
    assert d.create == ["export"] and d.status["phase"] == "Exporting"
    jobs["export"] = done()
    results = {
        "selected": 2,
        "perVideoSelected": {"a.mp4": 2},
        "frames": {"total": 30, "corrupt": 1},
        "reportUri": "s3://out/runs/r/report.html",
        "exportUri": "s3://out/runs/r/export.json",
    }
    d = decide(STAGES, d.status, 1, True, jobs, {"export": results})
    assert d.create == [] and d.status["phase"] == "Succeeded"
    assert {k: d.status[k] for k in results} == results
    assert any(c["type"] == "Succeeded" and c["status"] == "True" for c in d.status["conditions"])
    assert decide(STAGES, d.status, 1, True, jobs).create == []  # terminal: nothing more


def test_a_list_job_without_a_count_fails_the_run() -> None:
    d = decide(STAGES, {"phase": "Pending"}, 1, True, {"list": done()}, {})
    assert d.status["phase"] == "Failed" and d.events[0][1] == "ListFailed"


def test_a_failed_list_job_says_why() -> None:
    failed = job(conditions=[{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}])
    error = {"error": "spec.input: no videos under s3://in/ match include=['*.mp4']"}
    d = decide(STAGES, {"phase": "Pending"}, 1, True, {"list": failed}, {"list": error})
    cond = next(c for c in d.status["conditions"] if c["type"] == "Failed")
    assert cond["reason"] == "InputUnavailable" and "no videos under s3://in/" in d.status["message"]


def test_a_failed_video_is_named_and_the_run_goes_on() -> None:
    infer = job(
        completedIndexes="0,2",
        failedIndexes="1",
        conditions=[{"type": "Failed", "status": "True", "reason": "FailedIndexes"}],
    )
    named = {1: {"name": "b.mp4", "reason": "cannot open: Invalid data found when processing input"}}
    d = decide(STAGES, INFERRING, 1, True, {"list": done(), "infer": infer}, {}, named)
    assert d.create == ["convert"]
    assert d.status["videos"] == {
        "total": 3,
        "done": 2,
        "failed": 1,
        "failedVideos": [{"name": "b.mp4", "reason": "cannot open: Invalid data found when processing input"}],
    }
    assert any(e[1] == "VideosFailed" and "b.mp4" in e[2] for e in d.events)
    unnamed = decide(STAGES, INFERRING, 1, True, {"list": done(), "infer": infer})
    assert unnamed.status["videos"]["failedVideos"] == [
        {"name": "index 1", "reason": "inference failed (see the index's pod)"}
    ]


def test_failed_videos_in_status_are_bounded() -> None:
    status = {"phase": "Inferring", "videos": {"total": 500, "done": 0, "failed": 0, "failedVideos": []}}
    d = decide(STAGES, status, 1, True, {"list": done(), "infer": job(completedIndexes="0", failedIndexes="1-499")})
    assert d.status["videos"]["failed"] == 499 and len(d.status["videos"]["failedVideos"]) == 20


def test_every_video_failing_fails_the_run() -> None:
    d = decide(STAGES, INFERRING, 1, True, {"list": done(), "infer": job(failedIndexes="0-2")})
    assert d.status["phase"] == "Failed" and d.events[0][:2] == ("Warning", "AllVideosFailed")


def test_a_failed_stage_job_fails_the_run_with_its_reason() -> None:
    jobs = {
        "list": done(),
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
    status = {**INFERRING, "phase": "Converting"}
    d = decide(STAGES, status, 2, True, jobs, {"convert": {"error": "cannot write s3://out/x: AccessDenied"}})
    assert d.status["phase"] == "Failed" and "BackoffLimitExceeded" in d.status["message"]
    assert d.status["message"].endswith("cannot write s3://out/x: AccessDenied")
    failed = next(c for c in d.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "ConvertFailed" and failed["observedGeneration"] == 2
    assert next(c for c in d.status["conditions"] if c["type"] == "Succeeded")["status"] == "False"


def test_suspended_jobs_wait_for_kueue() -> None:
    infer = {"metadata": {"name": "r-infer"}, "spec": {"suspend": True}, "status": {}}
    d = decide(STAGES, INFERRING, 1, True, {"list": done(), "infer": infer})
    assert d.create == [] and "waiting for admission" in d.status["message"]


def test_more_failed_videos_than_allowed_fails_the_run() -> None:
    infer = job(completedIndexes="0", failedIndexes="1-2")
    d = decide(STAGES, INFERRING, 1, True, {"list": done(), "infer": infer}, {}, {}, max_failed_videos=1)
    cond = next(c for c in d.status["conditions"] if c["type"] == "Failed")
    assert cond["reason"] == "TooManyVideosFailed" and "2 of 3 videos failed" in d.status["message"]
    ok = decide(STAGES, INFERRING, 1, True, {"list": done(), "infer": infer}, {}, {}, max_failed_videos=2)
    assert ok.status["phase"] == "Converting"  # two failures are allowed: the run goes on


def test_index_ranges_count_and_name_without_expanding() -> None:
    from framesift.operator.reconcile import IndexRanges

    huge = IndexRanges.parse("0-9999999,10000001")  # ten million indexes, two ranges
    assert len(huge) == 10_000_001 and huge.first(3) == [0, 1, 2]
    assert IndexRanges.parse("5,1-2,10-20").first(4) == [1, 2, 5, 10]
    assert not IndexRanges.parse("") and IndexRanges.parse(None).first(5) == []
    status = {"phase": "Inferring", "videos": {"total": 10_000_002, "done": 0, "failed": 0, "failedVideos": []}}
    infer = job(completedIndexes="0-9999999", failedIndexes="10000000-10000001")
    d = decide(STAGES, status, 1, True, {"list": done(), "infer": infer})
    assert d.status["videos"]["done"] == 10_000_000 and d.status["videos"]["failed"] == 2
    assert [v["name"] for v in d.status["videos"]["failedVideos"]] == ["index 10000000", "index 10000001"]
