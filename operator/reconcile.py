"""Where a run stands, derived from the objects that exist: pure functions, no cluster access.

The operator may be killed at any moment; on restart it calls `decide` with what it finds and
carries on. A child is created only when it is missing, so no Job is ever made twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from framesift.api.shards import MAX_FAILED_VIDEOS_IN_STATUS, index_count, videos_in
from framesift.api.vocabulary import (
    LIGHTLYONE_STATUS_KEYS,
    PHASE_MESSAGES,
    TERMINAL_PHASES,
    WAITING_FOR_ADMISSION,
    Condition,
    Phase,
    Reason,
    Stage,
)


def now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class IndexRanges:
    """Kubernetes' interval notation for Job indexes ("0-2,5"), kept as ranges: counting and
    taking the first few stay linear in the string's length, whatever the Job's size."""

    ranges: tuple[tuple[int, int], ...]  # inclusive (lo, hi), in the Job controller's order

    @classmethod
    def parse(cls, text: str | None) -> IndexRanges:
        ranges = []
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            lo, _, hi = part.partition("-")
            ranges.append((int(lo), int(hi or lo)))
        return cls(tuple(ranges))

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def first(self, n: int) -> list[int]:
        """The n smallest indexes."""
        out: list[int] = []
        for lo, hi in sorted(self.ranges):
            out.extend(range(lo, min(hi, lo + n - len(out) - 1) + 1))
            if len(out) >= n:
                break
        return out


def parse_indexes(text: str | None) -> set[int]:
    """Every index of the notation, as a set ("0-2,5" → {0, 1, 2, 5}): for small Jobs and tests."""
    return {i for lo, hi in IndexRanges.parse(text).ranges for i in range(lo, hi + 1)}


def job_condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


@dataclass
class InferProgress:
    total: int
    done: IndexRanges
    failed: IndexRanges
    finished: bool


def infer_progress(job: dict[str, Any], total: int) -> InferProgress:
    status = job.get("status") or {}
    done = IndexRanges.parse(status.get("completedIndexes"))
    failed = IndexRanges.parse(status.get("failedIndexes"))
    terminal = job_condition(job, "Complete") or job_condition(job, "Failed")
    # an index is either completed or failed, never both: the counts add up
    return InferProgress(total, done, failed, bool(terminal) or len(done) + len(failed) >= total)


@dataclass
class Decision:
    """What to do now: children to create (by stage), the status to publish, events to post."""

    create: list[str] = field(default_factory=list)  # "config" or a stage
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    videos: int | None = None  # the inference Job's size, when it is to be created
    worker_id: str | None = None  # the LightlyOne Worker's id, when its Job is to be created
    delete: list[str] = field(default_factory=list)  # stages whose Jobs are to be deleted


WORKER = "worker"  # the LightlyOne Worker Job (engine lightlyone), started by the select stage's report


@dataclass
class LightlyOneView:
    """What the operator knows of a LightlyOne run without its token: the select pod's latest
    report (a status line of its log while it runs, its termination message once it is done) and
    what the Worker's pod is doing (for a pickup that never comes)."""

    report: dict[str, Any]
    worker_pod: str | None = None


def set_condition(
    conditions: list[dict[str, Any]], kind: str, status: str, reason: str, message: str, generation: int | None
) -> list[dict[str, Any]]:
    """Conditions keep their lastTransitionTime unless their status changes."""
    out = [dict(c) for c in conditions if c.get("type") != kind]
    previous = next((c for c in conditions if c.get("type") == kind), None)
    stamp = previous["lastTransitionTime"] if previous and previous.get("status") == status else now()
    cond = {"type": kind, "status": status, "reason": reason, "message": message[:1000], "lastTransitionTime": stamp}
    if generation is not None:
        cond["observedGeneration"] = generation
    out.append(cond)
    return sorted(out, key=lambda c: c["type"])


def fail(status: dict[str, Any], reason: Reason, message: str, generation: int | None) -> Decision:
    """The run ends Failed: phase, message, both conditions, and a Warning Event with the reason."""
    status = dict(status)
    status.update({"phase": Phase.FAILED, "message": message, "observedGeneration": generation})
    status["finishedAt"] = status.get("finishedAt") or now()
    conds = set_condition(status.get("conditions", []), Condition.FAILED, "True", reason, message, generation)
    status["conditions"] = set_condition(conds, Condition.SUCCEEDED, "False", reason, message, generation)
    return Decision(status=status, events=[("Warning", reason, message)])


def listed_videos(status: dict[str, Any], summaries: dict[str, dict[str, Any]]) -> int | None:
    """How many videos the run has: the list Job's summary (or status, once inference started)."""
    count = (summaries.get("list") or {}).get("videos")
    if isinstance(count, int) and count >= 0:
        return count
    known = (status.get("videos") or {}).get("total")
    return known if isinstance(known, int) else None


def _failed_videos(failed: IndexRanges, named: dict[int, dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for i in failed.first(MAX_FAILED_VIDEOS_IN_STATUS):
        known = named.get(i) or {}
        out.append(
            {
                "name": known.get("name") or f"index {i}",
                "reason": known.get("reason") or "inference failed (see the index's pod)",
            }
        )
    return out


def _results(summary: dict[str, Any]) -> dict[str, Any]:
    """The export Job's summary → the status fields it fills (only those it carries)."""
    out: dict[str, Any] = {}
    for key in ("selected", "perVideoSelected", "frames", "reportUri", "exportUri"):
        if key in summary:
            out[key] = summary[key]
    return out


def decide(
    stages: tuple[Stage, ...],
    status: dict[str, Any],
    generation: int | None,
    config_exists: bool,
    jobs: dict[str, dict[str, Any]],
    summaries: dict[str, dict[str, Any]] | None = None,
    failed_videos: dict[int, dict[str, str]] | None = None,
    max_failed_videos: int | None = None,
    lightlyone: LightlyOneView | None = None,
    videos_per_index: int = 1,
) -> Decision:
    """The next step of a run from its current status and children.

    `jobs` maps stage → the Job found for it; `summaries` maps stage → the JSON summary its pod
    left as termination message (the list Job's video count, a failure's error, the export's
    results); `failed_videos` maps a failed inference index → {name, reason} from its pod;
    `max_failed_videos` is how many videos may fail (None: all but every one); `lightlyone` is
    given for runs of that engine.
    """
    summaries = summaries or {}
    status = {k: v for k, v in status.items()}
    decision = Decision(status=status)
    old_phase = status.get("phase")
    if old_phase in TERMINAL_PHASES:
        return Decision()
    status.setdefault("startedAt", now())
    status["observedGeneration"] = generation
    if not config_exists:
        decision.create.append("config")
        status["phase"] = Phase.PENDING
        return _announce(decision, old_phase)

    for stage in stages:
        job = jobs.get(stage.name)
        if job is None:
            if stage.name == "infer":
                total = listed_videos(status, summaries)
                if total is None:
                    message = "the list Job finished without saying how many videos it found (see its pod's log)"
                    return fail(status, Reason.LIST_FAILED, message, generation)
                skipped = (summaries.get("list") or {}).get("skipped")
                if total == 0 and isinstance(skipped, int):  # new only, and nothing new: no Job to run
                    status["videos"] = {"total": 0, "done": 0, "failed": 0, "failedVideos": []}
                    message = f"no new videos ({skipped} inferred by earlier runs over this output)"
                    return _succeed(decision, old_phase, Reason.NO_NEW_VIDEOS, message, generation)
                decision.videos = total
                status["videos"] = {"total": total, "done": 0, "failed": 0, "failedVideos": []}
            decision.create.append(stage.name)
            status["phase"] = stage.phase
            return _announce(decision, old_phase)
        if stage.name == "infer":
            total = int((status.get("videos") or {}).get("total") or 0)
            progress = infer_progress(job, index_count(total, videos_per_index))
            failed_count = videos_in(progress.failed.ranges, videos_per_index, total)
            known = status.get("videos") or {}
            if not (progress.finished and int(known.get("failed") or 0) > failed_count):  # else: convert's exact count
                status["videos"] = {
                    "total": total,
                    "done": videos_in(progress.done.ranges, videos_per_index, total),
                    "failed": failed_count,
                    "failedVideos": _failed_videos(progress.failed, failed_videos or {}),
                }
            if max_failed_videos is not None and failed_count > max_failed_videos:
                message = (
                    f"{failed_count} of {total} videos failed, more than spec.input.maxFailedVideos "
                    f"allows ({max_failed_videos})"
                )
                return fail(status, Reason.TOO_MANY_VIDEOS_FAILED, message, generation)
            if not progress.finished:
                status["phase"] = stage.phase
                _suspended(job, status)
                return _announce(decision, old_phase)
            if not progress.done:
                message = f"inference failed for every one of the {total} videos"
                return fail(status, Reason.ALL_VIDEOS_FAILED, message, generation)
            if progress.failed and old_phase == stage.phase:
                names = ", ".join(v["name"] for v in status["videos"]["failedVideos"][:5])
                decision.events.append(
                    ("Warning", Reason.VIDEOS_FAILED, f"{failed_count} video(s) failed and are left out: {names}")
                )
            continue
        if stage.name == "convert" and job_condition(job, "Complete") and "failed" in summaries.get("convert", {}):
            ended = _count_failed_videos(decision, status, summaries["convert"], max_failed_videos, generation)
            if ended is not None:
                return ended
        if stage.name == "select" and lightlyone is not None:
            _follow_lightlyone(decision, status, jobs, lightlyone)
        failed = job_condition(job, "Failed")
        if failed:
            summary = summaries.get(stage.name) or {}
            error = summary.get("error")
            message = (
                f"{stage.name} Job {job['metadata']['name']} failed: {failed.get('reason', '')} "
                f"{failed.get('message', '')}".strip()
            )
            reason = Reason(summary["reason"]) if summary.get("reason") in set(Reason) else stage.failed
            if reason == Reason.LIGHTLYONE_PICKUP_TIMEOUT and lightlyone and lightlyone.worker_pod:
                error = f"{error} (the Worker pod: {lightlyone.worker_pod})"
            ended = fail(status, reason, f"{message}: {error}" if error else message, generation)
            ended.events[:0], ended.delete = decision.events, decision.delete
            return ended
        if not job_condition(job, "Complete"):
            status["phase"] = stage.phase
            _suspended(job, status)
            waiting = lightlyone and (status.get("lightlyone") or {}).get("state") == "OPEN" and lightlyone.worker_pod
            if stage.name == "select" and waiting:
                status["message"] = f"waiting for the LightlyOne Worker to pick the run up; its pod: {waiting}"
            return _announce(decision, old_phase)

    status.update(_results(summaries.get("export") or {}))
    return _succeed(decision, old_phase, Reason.RUN_SUCCEEDED, None, generation)


def _succeed(
    decision: Decision, old_phase: str | None, reason: Reason, message: str | None, generation: int | None
) -> Decision:
    status = decision.status
    status["phase"] = Phase.SUCCEEDED
    status["finishedAt"] = status.get("finishedAt") or now()
    if message:
        status["message"] = message
    else:
        status.pop("message", None)
    status["conditions"] = set_condition(
        status.get("conditions", []),
        Condition.SUCCEEDED,
        "True",
        reason,
        message or PHASE_MESSAGES[Phase.SUCCEEDED],
        generation,
    )
    return _announce(decision, old_phase)


def _count_failed_videos(
    decision: Decision,
    status: dict[str, Any],
    summary: dict[str, Any],
    max_failed_videos: int | None,
    generation: int | None,
) -> Decision | None:
    """The run's exact failed videos, from the convert Job (chunks of the inference Job record a
    bad video and succeed, so the Job's failed indexes do not count them all)."""
    videos = dict(status.get("videos") or {})
    total, failed = int(videos.get("total") or 0), int(summary["failed"])
    named = list(summary.get("failedVideos") or videos.get("failedVideos") or [])[:MAX_FAILED_VIDEOS_IN_STATUS]
    if failed > int(videos.get("failed") or 0):
        names = ", ".join(v["name"] for v in named[:5])
        decision.events.append(("Warning", Reason.VIDEOS_FAILED, f"{failed} video(s) failed and are left out: {names}"))
    status["videos"] = {"total": total, "done": total - failed, "failed": failed, "failedVideos": named}
    if total and failed >= total:
        return fail(
            status, Reason.ALL_VIDEOS_FAILED, f"inference failed for every one of the {total} videos", generation
        )
    if max_failed_videos is not None and failed > max_failed_videos:
        message = (
            f"{failed} of {total} videos failed, more than spec.input.maxFailedVideos allows ({max_failed_videos})"
        )
        return fail(status, Reason.TOO_MANY_VIDEOS_FAILED, message, generation)
    return None


def _follow_lightlyone(
    decision: Decision, status: dict[str, Any], jobs: dict[str, dict[str, Any]], view: LightlyOneView
) -> None:
    """status.lightlyone from the select pod's report, an Event per state change, the Worker Job
    once the Worker is registered, and no Worker Job left running after the select Job ends."""
    old = dict(status.get("lightlyone") or {})
    new = {**old, **{k: v for k, v in view.report.items() if k in LIGHTLYONE_STATUS_KEYS and v is not None}}
    if new != old:
        status["lightlyone"] = new
    state = new.get("state")
    if state and state != old.get("state"):
        detail = f": {new['message']}" if new.get("message") else ""
        decision.events.append(("Normal", Reason.LIGHTLYONE_STATE, f"LightlyOne run {state}{detail}"))
    select = jobs["select"]
    select_done = bool(job_condition(select, "Complete") or job_condition(select, "Failed"))
    worker = jobs.get(WORKER)
    if worker is None and new.get("workerId") and not select_done:
        decision.create.append(WORKER)
        decision.worker_id = str(new["workerId"])
    worker_done = worker is not None and bool(job_condition(worker, "Complete") or job_condition(worker, "Failed"))
    if worker is not None and select_done and not worker_done:
        decision.delete.append(WORKER)


def _suspended(job: dict[str, Any], status: dict[str, Any]) -> None:
    if (job.get("spec") or {}).get("suspend"):
        status["message"] = f"Job {job['metadata']['name']} is {WAITING_FOR_ADMISSION} (suspended, Kueue)"
    else:
        status.pop("message", None)


def _announce(decision: Decision, old_phase: str | None) -> Decision:
    new_phase = decision.status.get("phase")
    if new_phase != old_phase and new_phase is not None:
        phase = Phase(new_phase)
        decision.events.append(("Normal", phase, PHASE_MESSAGES[phase]))
    return decision


__all__ = [
    "Decision",
    "IndexRanges",
    "LightlyOneView",
    "decide",
    "fail",
    "infer_progress",
    "parse_indexes",
    "set_condition",
]
