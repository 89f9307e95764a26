"""The embedded default: every stage of a run, in one process, on one machine.

The stage list is `framesift.api.vocabulary.PIPELINE`; `STAGE_RUNNERS` maps each stage to the
function that runs it here. The same functions back `framesift job <stage>` in the cluster;
here they run in order, with one model load for all videos and progress bars on stderr.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from framesift.api.vocabulary import STAGE_NAMES, stages_for
from framesift.jobs.context import RunContext, freeze_video_list, mark_succeeded
from framesift.jobs.convert import ConvertOutcome, convert
from framesift.jobs.export import run_export
from framesift.jobs.infer import ModelHolder, VideoOutcome, infer_video
from framesift.jobs.lease import RunLease
from framesift.jobs.model import resolve_weights
from framesift.jobs.progress import format_table, video_bar
from framesift.jobs.results import read_frame_column
from framesift.jobs.select import check_engine, check_selection_inputs, run_select

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    videos: list[VideoOutcome] = field(default_factory=list)
    convert: ConvertOutcome | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    corrupt_frames: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> list[VideoOutcome]:
        return [v for v in self.videos if v.status == "failed"]


def preflight(ctx: RunContext) -> None:
    """Everything that can fail cheaply, before hours of inference: videos to read, an output to
    write, weights that exist."""
    check_engine(ctx.run)
    check_selection_inputs(ctx)
    _ = ctx.videos
    ctx.output.check_writable()
    ctx.output.clean_scratch()
    resolve_weights(ctx.run.spec.model.weights, ctx.base_dir)


def count_corrupt(ctx: RunContext, outcome: VideoOutcome) -> int:
    if not outcome.cache_key:
        return 0
    ratios = read_frame_column(ctx.output, outcome.cache_key, "uniform_row_ratio")
    return int(np.count_nonzero(ratios > ctx.run.spec.quality.corruption_threshold))


def _labelled_bar(label: str, show_progress: bool, _key: str, total: int | None) -> Any:
    return video_bar(label, total, show_progress)


def infer_all(ctx: RunContext, summary: RunSummary, show_progress: bool) -> None:
    holder = ModelHolder(ctx)
    total = len(ctx.videos)
    for index, video in enumerate(ctx.videos):
        label = f"[{index + 1}/{total}] {video.key}"
        outcome = infer_video(ctx, index, holder, functools.partial(_labelled_bar, label, show_progress))
        if outcome.status == "cached":
            print(f"{label}: unchanged since the last run, inference skipped", file=sys.stderr)
        elif outcome.status == "failed":
            print(f"{label}: FAILED: {outcome.reason}", file=sys.stderr)
        summary.videos.append(outcome)
        summary.corrupt_frames[video.key] = count_corrupt(ctx, outcome)


def list_stage(ctx: RunContext, summary: RunSummary, _show_progress: bool) -> None:
    key = freeze_video_list(ctx)
    summary.extra["videos"] = f"{len(ctx.videos)} listed under {ctx.input.uri} ({ctx.output.url(key)})"
    if ctx.hidden_videos:
        summary.extra["videos"] += f"; {len(ctx.hidden_videos)} skipped (a path part starts with '.')"
    if ctx.already_inferred:
        summary.extra["videos"] += f"; {len(ctx.already_inferred)} skipped (inferred by earlier runs: new only)"


def convert_stage(ctx: RunContext, summary: RunSummary, _show_progress: bool) -> None:
    summary.convert = convert(ctx)


def select_stage(ctx: RunContext, summary: RunSummary, _show_progress: bool) -> None:
    outcome = run_select(ctx)
    state = "unchanged, skipped" if outcome.skipped else "done"
    per_video = ", ".join(f"{v}: {n}" for v, n in outcome.per_video.items())
    summary.extra["selection"] = f"{outcome.selected} frames {state} ({outcome.stopped_because}); {per_video}"
    summary.extra["selected.json"] = ctx.output.url(ctx.person_key("selected.json"))


def export_stage(ctx: RunContext, summary: RunSummary, _show_progress: bool) -> None:
    outcome = run_export(ctx, summary.stage_seconds)
    state = "unchanged, skipped" if outcome.skipped else "written"
    summary.extra["export"] = f"{outcome.frames} frames {state} under {ctx.output.url('frames/')}"
    summary.extra["export.json"] = outcome.export_uri
    summary.extra["report"] = outcome.report_uri
    summary.extra["report (pdf)"] = ctx.output.url(outcome.files["reportPdf"])


StageRunner = Callable[[RunContext, RunSummary, bool], None]
STAGE_RUNNERS: dict[str, StageRunner] = {
    "list": list_stage,
    "infer": infer_all,
    "convert": convert_stage,
    "select": select_stage,
    "export": export_stage,
}
assert tuple(STAGE_RUNNERS) == STAGE_NAMES, "every stage of the pipeline runs locally, in its order"


class TooManyVideosFailed(RuntimeError):
    """More videos failed than spec.input.maxFailedVideos allows: the run stops after inference
    (`summary` holds what was done, for the closing table)."""

    def __init__(self, message: str, summary: RunSummary):
        super().__init__(message)
        self.summary = summary


def check_failed_videos(ctx: RunContext, summary: RunSummary) -> None:
    total, failed = len(summary.videos), len(summary.failed)
    limit = ctx.run.spec.input.failed_videos_limit(total)
    if failed and (failed == total or (limit is not None and failed > limit)):
        allowed = "none may be left" if limit is None else f"spec.input.maxFailedVideos allows {limit}"
        names = ", ".join(v.video for v in summary.failed[:5])
        raise TooManyVideosFailed(f"{failed} of {total} videos failed ({names}); {allowed}", summary)


def run_local(ctx: RunContext, show_progress: bool = True) -> RunSummary:
    """Every stage this run asks for, in order, after the preflight checks. Raises
    TooManyVideosFailed after inference when more videos failed than the spec allows (the
    summary so far is on the exception)."""
    summary = RunSummary()
    preflight(ctx)
    with RunLease(ctx, break_lease=ctx.break_lease):  # one process per run name and output at a time
        for stage in stages_for(ctx.run.spec.selection is not None):
            started = time.monotonic()
            STAGE_RUNNERS[stage.name](ctx, summary, show_progress)
            summary.stage_seconds[stage.name] = time.monotonic() - started
            if stage.name == "list" and not ctx.videos:  # new only, and nothing new
                summary.extra["done"] = "no new videos: nothing to infer or select"
                break
            if stage.name == "infer":
                check_failed_videos(ctx, summary)
        else:
            mark_succeeded(ctx)
    return summary


def render_summary(ctx: RunContext, summary: RunSummary) -> str:
    rows = []
    for v in summary.videos:
        rows.append(
            [
                v.video,
                v.status,
                v.frames,
                v.inferred,
                summary.corrupt_frames.get(v.video, 0),
                f"{v.fps:.1f}" if v.status == "ok" else "-",
                v.reason or ("; ".join(v.decode_errors)[:60] if v.decode_errors else ""),
            ]
        )
    table = format_table(["video", "status", "frames", "inferred", "corrupt", "frames/s", "note"], rows)
    lines = [f"run {ctx.name}: output {ctx.output.uri}", table]
    if summary.convert:
        done = "unchanged, skipped" if summary.convert.skipped else "written"
        lines.append(
            f"LightlyOne layout {done}: {summary.convert.prediction_files} prediction files, "
            f"{summary.convert.metadata_files} metadata files under {ctx.output.url('.lightly/')}"
        )
    for key, value in summary.extra.items():
        lines.append(f"{key}: {value}")
    lines.append("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary.stage_seconds.items()))
    if summary.failed:
        lines.append(f"{len(summary.failed)} video(s) failed; the others completed")
    return "\n".join(lines)
