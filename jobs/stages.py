"""`framesift job <stage>`: the entry points the Kubernetes Jobs run, one stage each."""

from __future__ import annotations

import os
import sys

from framesift.jobs.context import RunContext, load_context
from framesift.jobs.convert import convert
from framesift.jobs.export import run_export
from framesift.jobs.infer import EXIT_BAD_INPUT, ModelHolder, infer_video
from framesift.jobs.pipeline import RunSummary, Stage
from framesift.jobs.progress import video_bar
from framesift.jobs.select import run_select


def _select_stage(ctx: RunContext, summary: RunSummary) -> None:
    outcome = run_select(ctx)
    state = "unchanged, skipped" if outcome.skipped else "done"
    per_video = ", ".join(f"{v}: {n}" for v, n in outcome.per_video.items())
    summary.extra["selection"] = f"{outcome.selected} frames {state} ({outcome.stopped_because}); {per_video}"
    summary.extra["selected.json"] = ctx.output.url(ctx.person_key("selected.json"))


def _export_stage(ctx: RunContext, summary: RunSummary) -> None:
    outcome = run_export(ctx, summary.stage_seconds)
    state = "unchanged, skipped" if outcome.skipped else "written"
    summary.extra["export"] = f"{outcome.frames} frames {state} under {ctx.output.url('frames/')}"
    summary.extra["export.json"] = outcome.export_uri
    summary.extra["report"] = outcome.report_uri
    summary.extra["report (pdf)"] = ctx.output.url(outcome.files["reportPdf"])


def later_stages(ctx: RunContext) -> list[tuple[str, Stage]]:
    """The stages after convert that this run asks for (selection, export)."""
    stages: list[tuple[str, Stage]] = []
    if ctx.run.spec.selection is not None:
        stages.append(("select", _select_stage))
        stages.append(("export", _export_stage))
    return stages


def _infer(ctx: RunContext, index: int | None, show_progress: bool) -> int:
    if index is None and "JOB_COMPLETION_INDEX" in os.environ:
        index = int(os.environ["JOB_COMPLETION_INDEX"])
    indices = range(len(ctx.videos)) if index is None else [index]
    if index is not None and not 0 <= index < len(ctx.videos):
        print(f"error: --index {index} is outside the run's {len(ctx.videos)} videos", file=sys.stderr)
        return 2
    holder = ModelHolder(ctx)
    failed = 0
    for i in indices:
        outcome = infer_video(ctx, i, holder, lambda key, n: video_bar(key, n, show_progress))
        print(f"{outcome.video}: {outcome.status} {outcome.reason}".rstrip(), file=sys.stderr)
        failed += outcome.status == "failed"
    return EXIT_BAD_INPUT if failed else 0


def run_job(stage: str, run_file: str, index: int | None, video_list: str | None, show_progress: bool) -> int:
    ctx = load_context(run_file, video_list)
    if stage == "infer":
        return _infer(ctx, index, show_progress)
    if stage == "convert":
        outcome = convert(ctx)
        state = "unchanged" if outcome.skipped else "written"
        print(f"convert: {outcome.prediction_files} prediction files {state}", file=sys.stderr)
        return 0
    summary = RunSummary()
    for name, run_stage in later_stages(ctx):
        if name == stage:
            run_stage(ctx, summary)
            return 0
    print(f"error: stage {stage} is not available for this run", file=sys.stderr)
    return 2
