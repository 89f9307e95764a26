"""`framesift job <stage>`: the entry points the Kubernetes Jobs run, one stage each.

Inference runs one video per Job index; every other stage runs the same function as
`framesift run` (`pipeline.STAGE_RUNNERS`). Every stage after `list` reads the video list the
list stage froze in the output. Each leaves a small JSON summary as its pod's termination
message (`jobs/summary.py`): all the operator learns about a run comes from there.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from framesift.api.vocabulary import ExitCode, stages_for
from framesift.jobs.context import VIDEO_LIST, RunContext, load_context
from framesift.jobs.infer import ModelHolder, infer_video
from framesift.jobs.pipeline import STAGE_RUNNERS, RunSummary
from framesift.jobs.progress import video_bar
from framesift.jobs.select import per_video_counts
from framesift.jobs.summary import write_summary


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
        if index is not None:
            write_summary({"video": outcome.video, "status": outcome.status, "reason": outcome.reason})
    return ExitCode.BAD_INPUT if failed else ExitCode.OK


def results_summary(ctx: RunContext) -> dict[str, Any]:
    """What the run's status shows at the end: counts and URIs, from the selection and export."""
    selection = json.loads(ctx.output.read_text(ctx.run_key("selection.json")))["selection"]
    marker = json.loads(ctx.output.read_text(ctx.run_key("export.json")))
    return {
        "selected": len(selection["selected"]),
        "frames": {"total": int(selection.get("frames", 0)), "corrupt": int(selection["filtered"].get("corrupt", 0))},
        "reportUri": marker["reportUri"],
        "exportUri": marker["exportUri"],
        "perVideoSelected": per_video_counts(item["video"] for item in selection["selected"]),
    }


def stage_summary(ctx: RunContext, stage: str, summary: RunSummary) -> dict[str, Any]:
    if stage == "list":
        listed: dict[str, Any] = {"videos": len(ctx.videos), "videoList": ctx.output.url(ctx.run_key(VIDEO_LIST))}
        if ctx.new_only or ctx.run.spec.input.new_only:
            listed["skipped"] = len(ctx.already_inferred)  # inferred by earlier runs
        return listed
    if stage == "convert" and summary.convert is not None:
        return {"predictionFiles": summary.convert.prediction_files, "skipped": summary.convert.skipped}
    if stage == "export":
        return results_summary(ctx)
    if stage == "select" and ctx.run.spec.selector.engine == "lightlyone":
        selection = json.loads(ctx.output.read_text(ctx.run_key("selection.json")))["selection"]
        return {"stage": stage, "done": True, "lightlyone": selection.get("lightlyone", {})}
    return {"stage": stage, "done": True}


def run_job(stage: str, run_file: str, index: int | None, video_list: str | None, show_progress: bool) -> int:
    ctx = load_context(run_file, video_list, stored_list=stage != "list")
    ctx.output.clean_scratch()
    if stage not in {s.name for s in stages_for(ctx.run.spec.selection is not None)}:
        print(f"error: stage {stage} is not available for this run", file=sys.stderr)
        return ExitCode.USAGE
    if stage == "infer":
        return _infer(ctx, index, show_progress)
    summary = RunSummary()
    STAGE_RUNNERS[stage](ctx, summary, show_progress)
    for key, value in summary.extra.items():
        print(f"{key}: {value}", file=sys.stderr)
    if summary.convert is not None:
        state = "unchanged" if summary.convert.skipped else "written"
        print(f"convert: {summary.convert.prediction_files} prediction files {state}", file=sys.stderr)
    write_summary(stage_summary(ctx, stage, summary), optional=("perVideoSelected",))
    return ExitCode.OK
