"""The words a run is described in, each defined once: phases, stages, condition reasons, exit
codes and annotation keys.

The models, the operator's state machine, its Events and metrics, the CLI, the docs and the
Argo CD health check all take these from here (tests derive the documented tables from them).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    INFERRING = "Inferring"
    CONVERTING = "Converting"
    SELECTING = "Selecting"
    EXPORTING = "Exporting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


TERMINAL_PHASES: frozenset[str] = frozenset({Phase.SUCCEEDED, Phase.FAILED})


class Condition(StrEnum):
    """Condition types on a run's status (`kubectl wait --for=condition=Succeeded`)."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SPEC_CHANGE_IGNORED = "SpecChangeIgnored"


class Reason(StrEnum):
    """Condition and Event reasons. Phase changes are announced with the phase as the reason."""

    INVALID_SPEC = "InvalidSpec"
    INPUT_UNAVAILABLE = "InputUnavailable"
    LIST_FAILED = "ListFailed"
    ALL_VIDEOS_FAILED = "AllVideosFailed"
    TOO_MANY_VIDEOS_FAILED = "TooManyVideosFailed"
    INFER_FAILED = "InferFailed"
    CONVERT_FAILED = "ConvertFailed"
    SELECT_FAILED = "SelectFailed"
    EXPORT_FAILED = "ExportFailed"
    VIDEOS_FAILED = "VideosFailed"
    LIGHTLYONE_TOKEN_REJECTED = "LightlyOneTokenRejected"
    LIGHTLYONE_PLAN_LIMIT = "LightlyOnePlanLimit"
    LIGHTLYONE_REFUSED = "LightlyOneRefused"
    LIGHTLYONE_UNREACHABLE = "LightlyOneUnreachable"
    LIGHTLYONE_PICKUP_TIMEOUT = "LightlyOnePickupTimeout"
    LIGHTLYONE_RUN_TIMEOUT = "LightlyOneRunTimeout"
    LIGHTLYONE_RUN_FAILED = "LightlyOneRunFailed"
    LIGHTLYONE_STATE = "LightlyOneState"
    RUN_SCHEDULED = "RunScheduled"
    TICK_SKIPPED = "TickSkipped"
    TICK_MISSED = "TickMissed"
    RUN_REPLACED = "RunReplaced"
    SCHEDULE_SUSPENDED = "Suspended"
    SCHEDULE_ACTIVE = "Scheduling"
    NO_NEW_VIDEOS = "NoNewVideos"
    SPEC_CHANGED_AFTER_START = "SpecChangedAfterStart"
    SPEC_CHANGE_IGNORED = "SpecChangeIgnored"
    RUN_SUCCEEDED = "RunSucceeded"


@dataclass(frozen=True)
class ReasonInfo:
    meaning: str
    fails_run: bool
    stage: str  # the `stage` label of framesift_job_failures_total when it fails the run


REASONS: dict[Reason, ReasonInfo] = {
    Reason.INVALID_SPEC: ReasonInfo("the spec does not validate; the message names each field", True, "spec"),
    Reason.INPUT_UNAVAILABLE: ReasonInfo(
        "the input cannot be listed, or no video matches (the list Job's message says which)", True, "list"
    ),
    Reason.LIST_FAILED: ReasonInfo("the list Job finished without saying how many videos it found", True, "list"),
    Reason.ALL_VIDEOS_FAILED: ReasonInfo("inference failed for every video", True, "infer"),
    Reason.TOO_MANY_VIDEOS_FAILED: ReasonInfo(
        "more videos failed than spec.input.maxFailedVideos allows", True, "infer"
    ),
    Reason.INFER_FAILED: ReasonInfo("the inference Job failed as a whole", True, "infer"),
    Reason.CONVERT_FAILED: ReasonInfo("the conversion/upload Job failed", True, "convert"),
    Reason.SELECT_FAILED: ReasonInfo("the selection Job failed", True, "select"),
    Reason.EXPORT_FAILED: ReasonInfo("the export Job failed", True, "export"),
    Reason.VIDEOS_FAILED: ReasonInfo("some videos failed and are left out; the run goes on (Event)", False, "infer"),
    Reason.LIGHTLYONE_TOKEN_REJECTED: ReasonInfo(
        "the Lightly API rejected the token (401/403): check the Secret spec.selector.token names", True, "select"
    ),
    Reason.LIGHTLYONE_PLAN_LIMIT: ReasonInfo("LightlyOne refused for the account's plan (402)", True, "select"),
    Reason.LIGHTLYONE_REFUSED: ReasonInfo(
        "LightlyOne refused a dataset, datasource, config or export (4xx, with LightlyOne's text)", True, "select"
    ),
    Reason.LIGHTLYONE_UNREACHABLE: ReasonInfo(
        "the Lightly API stayed unreachable longer than spec.selector.apiRetryTimeout", True, "select"
    ),
    Reason.LIGHTLYONE_PICKUP_TIMEOUT: ReasonInfo(
        "no Worker picked the run up within spec.selector.pickupTimeout (the message says what its pod does)",
        True,
        "select",
    ),
    Reason.LIGHTLYONE_RUN_TIMEOUT: ReasonInfo("the LightlyOne run outlasted spec.selector.runTimeout", True, "select"),
    Reason.LIGHTLYONE_RUN_FAILED: ReasonInfo(
        "the LightlyOne run ended FAILED, CRASHED or ABORTED (LightlyOne's message)", True, "select"
    ),
    Reason.LIGHTLYONE_STATE: ReasonInfo("Event: the LightlyOne run changed state", False, ""),
    Reason.RUN_SCHEDULED: ReasonInfo("schedule Event: a tick created a run", False, ""),
    Reason.TICK_SKIPPED: ReasonInfo(
        "schedule Event: concurrencyPolicy Forbid skipped a tick (a run is active)", False, ""
    ),
    Reason.TICK_MISSED: ReasonInfo("schedule Event: a tick came later than startingDeadlineSeconds", False, ""),
    Reason.RUN_REPLACED: ReasonInfo("schedule Event: concurrencyPolicy Replace deleted the active run", False, ""),
    Reason.SCHEDULE_SUSPENDED: ReasonInfo("schedule condition Scheduling False: spec.suspend is set", False, ""),
    Reason.SCHEDULE_ACTIVE: ReasonInfo("schedule condition Scheduling True: ticks create runs", False, ""),
    Reason.NO_NEW_VIDEOS: ReasonInfo(
        "condition Succeeded: a newOnly run found no video earlier runs had not inferred", False, ""
    ),
    Reason.SPEC_CHANGED_AFTER_START: ReasonInfo(
        "condition SpecChangeIgnored: the spec changed after the start; the run keeps its first spec", False, ""
    ),
    Reason.SPEC_CHANGE_IGNORED: ReasonInfo("the Event that goes with SpecChangedAfterStart", False, ""),
    Reason.RUN_SUCCEEDED: ReasonInfo("condition Succeeded: every stage finished", False, ""),
}


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline: its Job/CLI name, the run's phase while it runs, whether it
    needs a selection_config, the Event message when it starts and the reason when it fails."""

    name: str
    phase: Phase
    needs_selection: bool
    starting: str
    failed: Reason


PIPELINE: tuple[Stage, ...] = (
    # The list Job lists the input with the run's credentials mounted: the operator reads no Secret.
    Stage("list", Phase.PENDING, False, "listing the input", Reason.INPUT_UNAVAILABLE),
    Stage("infer", Phase.INFERRING, False, "inference Job running", Reason.INFER_FAILED),
    Stage("convert", Phase.CONVERTING, False, "writing the LightlyOne layout", Reason.CONVERT_FAILED),
    Stage("select", Phase.SELECTING, True, "selecting frames", Reason.SELECT_FAILED),
    Stage("export", Phase.EXPORTING, True, "exporting the selected frames and the report", Reason.EXPORT_FAILED),
)
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in PIPELINE)


def stages_for(has_selection: bool) -> tuple[Stage, ...]:
    """infer and convert always; select and export when the run has a selection_config."""
    return tuple(stage for stage in PIPELINE if has_selection or not stage.needs_selection)


PHASE_MESSAGES: dict[Phase, str] = {
    **{stage.phase: stage.starting for stage in PIPELINE},
    Phase.PENDING: "run accepted; listing the input",
    Phase.SUCCEEDED: "every stage finished",
    Phase.FAILED: "the run failed",
}

WAITING_FOR_ADMISSION = "waiting for admission"  # status.message while Kueue holds a Job (Argo CD: Suspended)


class ExitCode(IntEnum):
    """`framesift` exit codes. BAD_INPUT fails the inference Job's index at once (podFailurePolicy)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    BAD_INPUT = 3
    GAVE_UP = 4  # a permanent answer from elsewhere (LightlyOne refused, or its run failed): no retry
    INTERRUPTED = 130


ANNOTATION_SPEC_GENERATION = "framesift.dev/spec-generation"

# Each stage pod leaves a small JSON summary as its container's termination message (the path
# Kubernetes reads it from); the operator learns counts, ids and URIs from the API alone.
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LOG_ENV = "FRAMESIFT_TERMINATION_LOG"
TERMINATION_MESSAGE_MAX = 4096
# While it runs, a LightlyOne run's select pod prints `<marker>{json}` lines (ids and states) to
# its log; the operator reads the last one for .status.lightlyone (pods/log, no Secret).
LIGHTLYONE_STATUS_MARKER = "FRAMESIFT_LIGHTLYONE "
LIGHTLYONE_STATUS_KEYS = ("datasetId", "workerId", "scheduledRunId", "runId", "state", "message")  # .status.lightlyone


def reason_table_markdown() -> str:
    """The reason table docs/operator.md carries (a test keeps the two equal)."""
    rows = ["| reason | fails the run | meaning |", "|---|---|---|"]
    for reason, info in REASONS.items():
        rows.append(f"| `{reason}` | {'yes' if info.fails_run else 'no'} | {info.meaning} |")
    return "\n".join(rows)
