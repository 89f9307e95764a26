"""Drive one LightlyOne run through the Lightly API: dataset, datasources, a Worker registered
for this run alone, the scheduled run, its states, and what it selected.

Runs in the select Job of the run (the token mounted there by Secret reference; the operator
never holds it) or in `framesift run`. Restart-safe: every id is persisted in the output
(`.framesift/runs/<run>/lightlyone.json`) before it is acted on, and a rerun adopts what exists
(a dataset by name, the Worker by name, the scheduled run by its label), so a killed pod or
operator never schedules a second run or registers a second Worker.

The client is synchronous and its own run-info generator sleeps 30 s between reads, so this
loop calls `get_compute_worker_run_info` itself at `spec.selector.pollInterval`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framesift.api.vocabulary import LIGHTLYONE_STATUS_KEYS, Reason
from framesift.jobs.context import RunContext
from framesift.jobs.lightlyone import plan

log = logging.getLogger(__name__)

STATE_FILE = "lightlyone.json"
GONE = "CANCELED_OR_NOT_EXISTING"  # the client's word for a scheduled run it cannot find
END_STATES = ("COMPLETED", "FAILED", "CRASHED", "ABORTED", GONE)
WAITING_STATES = ("OPEN",)  # scheduled, not yet picked up by a Worker


class LightlyOneError(RuntimeError):
    """The LightlyOne run cannot go on; `reason` says which of the documented failures it is."""

    def __init__(self, reason: Reason, message: str, summary: dict[str, Any] | None = None):
        super().__init__(message)
        self.reason = reason
        self.summary = summary or {}  # added to the stage's termination message


def status_ids(state: dict[str, Any]) -> dict[str, Any]:
    """What .status.lightlyone shows of the persisted state (ids and the run's state)."""
    return {k: state[k] for k in LIGHTLYONE_STATUS_KEYS if state.get(k) is not None}


def error_text(err: BaseException) -> str:
    """LightlyOne's own error text when there is one (`{"code", "error"}` bodies)."""
    body = getattr(err, "body", None)
    if body:
        try:
            doc = json.loads(body)
            if isinstance(doc, dict) and doc.get("error"):
                return str(doc["error"])
        except (TypeError, ValueError):
            return str(body)[:300]
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def classify(err: BaseException, what: str, token_source: str) -> LightlyOneError | None:
    """A permanent failure as a LightlyOneError; None for a transient one (retry)."""
    status = getattr(err, "status", None)
    if isinstance(status, int):
        if status == 403 or status == 401:
            return LightlyOneError(
                Reason.LIGHTLYONE_TOKEN_REJECTED,
                f"the Lightly API rejected the token ({status}) while {what}: check {token_source}",
            )
        if status == 402:
            return LightlyOneError(
                Reason.LIGHTLYONE_PLAN_LIMIT, f"LightlyOne refused {what}: plan limit (402): {error_text(err)}"
            )
        if 400 <= status < 500 and status not in (408, 409, 429):
            return LightlyOneError(
                Reason.LIGHTLYONE_REFUSED, f"LightlyOne refused {what} ({status}): {error_text(err)}"
            )
        return None
    if isinstance(err, (ValueError, TypeError)):  # the client's own validation, or a response it cannot read
        return LightlyOneError(Reason.LIGHTLYONE_REFUSED, f"LightlyOne's client refused {what}: {error_text(err)}")
    return None  # connection refused, timeouts, retry_utils.MaxRetryError: the API is unreachable


@dataclass
class Clock:
    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


@dataclass
class Outcome:
    state: dict[str, Any]
    rows: list[dict[str, str]]
    tag: str
    report_pdf: bytes | None
    notes: list[str] = field(default_factory=list)


CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_MAX_S = 60.0


def request_timeout(api_retry_s: float) -> tuple[float, float]:
    """(connect, read) seconds for one API request. The client's own default is 180 s per read,
    retried: a server that accepts and never answers would hold the run far past
    `selector.apiRetryTimeout`, which can only act between requests."""
    bound = max(1.0, api_retry_s)
    return min(CONNECT_TIMEOUT_S, bound), min(READ_TIMEOUT_MAX_S, bound)


def make_client(run_server: str | None, token: str, timeout: tuple[float, float] | None = None) -> Any:
    os.environ.setdefault("LIGHTLY_DID_VERSION_CHECK", "True")  # no background call home
    if run_server:
        os.environ["LIGHTLY_SERVER_LOCATION"] = run_server  # read when the client is built
    from lightly.api import ApiWorkflowClient

    client = ApiWorkflowClient(token=token)
    if timeout is not None:
        client.api_client.rest_client.timeout = timeout  # used by every request that names none
    return client


class Driver:
    def __init__(
        self,
        ctx: RunContext,
        client: Any,
        token_source: str,
        report: Callable[[dict[str, Any]], None],
        clock: Clock | None = None,
        env: dict[str, str] | None = None,
        announce_worker: Callable[[str], None] | None = None,
    ):
        self.ctx = ctx
        self.run = ctx.run
        self.client = client
        self.token_source = token_source
        self.report = report
        self.clock = clock or Clock()
        self.env = dict(os.environ) if env is None else env
        self.announce_worker = announce_worker or (lambda _line: None)
        self.limits = plan.timeouts(self.run)
        self.key = ctx.run_key(STATE_FILE)
        self.state: dict[str, Any] = {}

    # ----- persisted ids -----

    def _load(self) -> None:
        digest = plan.config_digest(self.run)
        if self.ctx.output.exists(self.key):
            stored = json.loads(self.ctx.output.read_text(self.key))
            if stored.get("config") == digest:
                self.state = stored
                return
            log.info("the LightlyOne configs changed since the last attempt: scheduling anew")
        self.state = {"config": digest}

    def remember_failure(self, reason: Reason, message: str) -> None:
        """Persist why the run could not go on: a rerun then starts a new LightlyOne run instead of
        waiting on one that ended."""
        if self.state:
            self._save(failure={"reason": str(reason), "message": message})

    def _save(self, **values: Any) -> None:
        self.state.update(values)
        self.ctx.output.write_text(self.key, json.dumps(self.state, indent=1))

    def _publish(self) -> None:
        self.report(status_ids(self.state))

    # ----- calls, with bounded retry while the API is unreachable -----

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        started = self.clock.now()
        delay = 1.0
        while True:
            try:
                return fn()
            except Exception as err:  # the client raises many kinds; classify decides
                permanent = classify(err, what, self.token_source)
                if permanent is not None:
                    raise permanent from None
                waited = self.clock.now() - started
                if waited >= float(self.limits["api"] or 0):
                    raise LightlyOneError(
                        Reason.LIGHTLYONE_UNREACHABLE,
                        f"the Lightly API was unreachable for {waited:.0f}s while {what} "
                        f"(spec.selector.apiRetryTimeout {self.run.spec.selector.api_retry_timeout}): "
                        f"{error_text(err)}",
                    ) from None
                log.warning("Lightly API unavailable while %s (%s); retrying in %.0fs", what, error_text(err), delay)
                self.clock.sleep(delay)
                delay = min(delay * 2, 30.0)

    # ----- the steps -----

    def setup(self) -> None:
        """Dataset, datasources, Worker and scheduled run: each adopted when it exists."""
        try:  # what the client cannot express (a region, missing keys) is said before any call
            sources = plan.datasources(self.run, self.env)
        except plan.PlanError as err:
            raise LightlyOneError(Reason.LIGHTLYONE_REFUSED, str(err)) from None
        self._load()
        if self.state.get("failure"):  # the last attempt ended for good: a rerun schedules a new run
            log.info("the last LightlyOne attempt failed (%s): scheduling a new run", self.state["failure"]["reason"])
            for key in (
                "failure",
                "scheduling",
                "scheduledRunId",
                "scheduledAt",
                "runId",
                "pickedUpAt",
                "deregistered",
            ):
                self.state.pop(key, None)
            self.state.update(state=None, message=None)
        client = self.client
        name = plan.dataset_name(self.run)
        dataset_id = self.state.get("datasetId")
        if not dataset_id:
            found = self.call(f"looking up dataset {name!r}", lambda: client.get_datasets_by_name(name, shared=False))
            if found:
                dataset_id = str(found[0].id)  # reruns and datapool runs reuse the dataset
            else:
                self.call(f"creating dataset {name!r}", lambda: client.create_dataset(name, dataset_type="Videos"))
                dataset_id = str(client.dataset_id)
            self._save(datasetId=dataset_id)
        client._dataset_id = dataset_id  # the id is known: no lookup by the client's setter
        for source in sources:
            self.call(
                f"setting the {source.kwargs['purpose']} datasource ({source.describe()})",
                functools.partial(getattr(client, source.method), **source.kwargs),
            )
        label = plan.worker_label(self.run)
        worker_id = self.call(
            f"registering Worker {label!r}", lambda: client.register_compute_worker(name=label, labels=[label])
        )
        self._save(workerId=worker_id)
        self._publish()  # the operator starts the Worker Job as soon as it sees the worker id
        self.announce_worker(plan.docker_run_line(self.run, worker_id))
        if not self.state.get("scheduledRunId"):
            adopted = self._find_scheduled(label) if self.state.get("scheduling") else None
            if adopted is None:
                self._save(scheduling=self.clock.now())  # before the POST: a restart looks before scheduling again
                adopted = self.call(
                    "scheduling the run",
                    lambda: client.schedule_compute_worker_run(
                        worker_config=plan.merged_worker_config(self.run),
                        lightly_config=self.run.spec.selector.lightly_config or None,
                        selection_config=plan.selection_config(self.run),
                        priority=self.run.spec.selector.priority,
                        runs_on=[label],
                    ),
                )
            self._save(scheduledRunId=adopted, scheduledAt=self.clock.now(), state="OPEN")
        self._publish()

    def _find_scheduled(self, label: str) -> str | None:
        """A scheduled run of ours the last attempt created before it could persist the id."""
        runs = self.call("listing scheduled runs", lambda: self.client.get_scheduled_compute_worker_runs())
        ours = [r for r in runs if list(r.runs_on or []) == [label]]
        return str(ours[-1].id) if ours else None

    def wait(self) -> None:
        """Poll the run's state until it ends, the pickup or run timeout passes, or the API stays away."""
        sid = self.state["scheduledRunId"]
        while True:
            info = self.call("reading the run's state", lambda: self.client.get_compute_worker_run_info(sid))
            # the client returns a plain str, or an enum member for "waiting for pickup"
            state, message = str(getattr(info.state, "value", info.state)), str(info.message or "")
            if state == GONE:  # the client also says so when the API failed to answer: make sure
                state, message = self._confirm_gone(sid, message)
            if state not in WAITING_STATES and not self.state.get("runId") and state != GONE:
                run = self.call("reading the run", lambda: self.client.get_compute_worker_run_from_scheduled_run(sid))
                self._save(runId=str(run.id), pickedUpAt=self.clock.now())
            if state != self.state.get("state") or message != self.state.get("message"):
                self._save(state=state, message=message)
                self._publish()
            if state in END_STATES:
                return
            now = self.clock.now()
            if state in WAITING_STATES and now - float(self.state["scheduledAt"]) > float(self.limits["pickup"] or 0):
                self._give_up_pickup()
            run_limit = self.limits["run"]
            if run_limit and self.state.get("pickedUpAt") and now - float(self.state["pickedUpAt"]) > run_limit:
                raise LightlyOneError(
                    Reason.LIGHTLYONE_RUN_TIMEOUT,
                    f"LightlyOne run {self.state.get('runId')} is still {state} after "
                    f"spec.selector.runTimeout {self.run.spec.selector.run_timeout}",
                )
            self.clock.sleep(float(self.limits["poll"] or 1))

    def _confirm_gone(self, sid: str, message: str) -> tuple[str, str]:
        """Ask again, through the bounded retry: a run that exists, a run still waiting, or gone."""
        try:
            run = self.call("reading the run", lambda: self.client.get_compute_worker_run_from_scheduled_run(sid))
            return str(run.state), str(run.message or "")
        except LightlyOneError as err:
            if err.reason != Reason.LIGHTLYONE_REFUSED:  # a 404: no Worker has it; is it still scheduled?
                raise
        waiting = self.call("listing scheduled runs", lambda: self.client.get_scheduled_compute_worker_runs())
        if any(str(r.id) == sid for r in waiting):
            return "OPEN", "waiting for pickup by a LightlyOne Worker"
        return GONE, message

    def _give_up_pickup(self) -> None:
        sid = self.state["scheduledRunId"]
        try:  # only an OPEN run can be canceled; it is, or we would not be here
            self.client._compute_worker_api.cancel_scheduled_docker_run_state_by_id(
                dataset_id=self.client.dataset_id, scheduled_id=sid
            )
        except Exception as err:  # the failure below says what matters; the cancel is a courtesy
            log.warning("could not cancel scheduled run %s: %s", sid, error_text(err))
        self.deregister()
        line = plan.docker_run_line(self.run, self.state["workerId"])
        self._save(state="CANCELED", message="no Worker picked the run up")
        self._publish()
        raise LightlyOneError(
            Reason.LIGHTLYONE_PICKUP_TIMEOUT,
            f"no LightlyOne Worker picked up scheduled run {sid} within spec.selector.pickupTimeout "
            f"{self.run.spec.selector.pickup_timeout}; a Worker for this run starts with: {line}",
        )

    def deregister(self) -> None:
        worker_id = self.state.get("workerId")
        if not worker_id or self.state.get("deregistered"):
            return
        try:
            self.client.delete_compute_worker(worker_id)
        except Exception as err:
            if getattr(err, "status", None) != 404:
                log.warning("could not deregister Worker %s: %s", worker_id, error_text(err))
                return
        self._save(deregistered=True)

    def results(self) -> Outcome:
        """After COMPLETED: the tag's frames (name, read URL, datasource URL) and the report PDF."""
        state = str(self.state.get("state"))
        if state != "COMPLETED":
            self.deregister()
            raise LightlyOneError(
                Reason.LIGHTLYONE_RUN_FAILED,
                f"LightlyOne run {self.state.get('runId') or 'scheduled as ' + str(self.state.get('scheduledRunId'))} "
                f"ended {state}: {self.state.get('message') or '-'}",
            )
        run = self.call(
            "reading the run",
            lambda: self.client.get_compute_worker_run_from_scheduled_run(self.state["scheduledRunId"]),
        )
        tag = self._tag(str(run.id))
        rows = self.call(f"exporting tag {tag!r}", lambda: self.client.export_filenames_and_read_urls_by_tag_name(tag))
        notes = []
        report_pdf = None
        with tempfile.TemporaryDirectory(prefix="lightlyone-") as tmp:
            path = Path(tmp) / "report.pdf"
            try:
                self.call(
                    "downloading the report", lambda: self.client.download_compute_worker_run_report_pdf(run, str(path))
                )
                report_pdf = path.read_bytes()
            except LightlyOneError:
                raise
            except Exception as err:  # ArtifactNotExist: the Worker uploaded no report
                notes.append(f"no LightlyOne report: {error_text(err)}")
        self.deregister()
        return Outcome(dict(self.state), [dict(r) for r in rows], tag, report_pdf, notes=notes)

    def _tag(self, run_id: str) -> str:
        wanted = self.run.spec.export.tag
        names = [t.name for t in self.call("listing tags", lambda: self.client.get_all_tags())]
        if wanted in names:
            return wanted
        tags = self.call("listing the run's tags", lambda: self.client.get_compute_worker_run_tags(run_id))
        if tags:
            return str(tags[0].name)  # newest first
        raise LightlyOneError(
            Reason.LIGHTLYONE_REFUSED,
            f"LightlyOne run {run_id} left no tag named {wanted!r} (spec.export.tag) and no other",
        )
