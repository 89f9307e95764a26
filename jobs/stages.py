"""`framesift job <stage>`: the entry points the Kubernetes Jobs run, one stage each.

Inference runs one video per Job index; every other stage runs the same function as
`framesift run` (`pipeline.STAGE_RUNNERS`).
"""

from __future__ import annotations

import os
import sys

from framesift.api.vocabulary import ExitCode, stages_for
from framesift.jobs.context import RunContext, load_context
from framesift.jobs.infer import ModelHolder, infer_video
from framesift.jobs.pipeline import STAGE_RUNNERS, RunSummary
from framesift.jobs.progress import video_bar


def _infer(ctx: RunContext, index: int | None, show_progress: bool) -> int:
    if index is None and "JOB_COMPLETION_INDEX" in os.environ:
        index = int(os.environ["JOB_COMPLETION_INDEX"])
    indices = range(len(ctx.videos)) if index is None else [index]
    if index is not None and not 0 <= index < len(ctx.videos):
        print(f"error: --index {index} is outside the run's {len(ctx.videos)} videos", file=sys.stderr)
        return ExitCode.USAGE
    holder = ModelHolder(ctx)
    failed = 0
    for i in indices:
        outcome = infer_video(ctx, i, holder, lambda key, n: video_bar(key, n, show_progress))
        print(f"{outcome.video}: {outcome.status} {outcome.reason}".rstrip(), file=sys.stderr)
        failed += outcome.status == "failed"
    return ExitCode.BAD_INPUT if failed else ExitCode.OK


def run_job(stage: str, run_file: str, index: int | None, video_list: str | None, show_progress: bool) -> int:
    ctx = load_context(run_file, video_list)
    if stage not in {s.name for s in stages_for(ctx.run.spec.selection is not None)}:
        print(f"error: stage {stage} is not available for this run", file=sys.stderr)
        return ExitCode.USAGE
    if stage == "infer":
        return _infer(ctx, index, show_progress)
    summary = RunSummary()
    STAGE_RUNNERS[stage](ctx, summary, show_progress)
    if summary.convert is not None:
        state = "unchanged" if summary.convert.skipped else "written"
        print(f"convert: {summary.convert.prediction_files} prediction files {state}", file=sys.stderr)
    return ExitCode.OK
