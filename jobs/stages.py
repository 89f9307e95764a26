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

from framesift.api.shards import MAX_FAILED_VIDEOS_IN_STATUS, index_count, videos_of_index, videos_per_index
from framesift.api.vocabulary import ExitCode, stages_for
from framesift.jobs.context import VIDEO_LIST, RunContext, load_context, mark_succeeded
from framesift.jobs.convert import write_video_predictions
from framesift.jobs.infer import ModelHolder, infer_video
from framesift.jobs.pipeline import STAGE_RUNNERS, RunSummary
from framesift.jobs.progress import video_bar
from framesift.jobs.select import per_video_counts
from framesift.jobs.summary import write_summary


def _infer(ctx: RunContext, index: int | None, show_progress: bool) -> int:
    """All videos, or the chunk Job index `index` covers. A chunk of one video exits 3 when the
    video is bad (the index fails, podFailurePolicy FailIndex); a chunk of several records each
    bad video (its pointer says why) and goes on: the index fails only for pod-level trouble, and
    its retry finds the videos done so far in the cache."""
    if index is None and "JOB_COMPLETION_INDEX" in os.environ:
        index = int(os.environ["JOB_COMPLETION_INDEX"])
    n_videos = len(ctx.videos)
    per_index = videos_per_index(ctx.run.spec.resources.infer.videos_per_pod, n_videos)
    if index is not None and not 0 <= index < index_count(n_videos, per_index):
        print(
            f"error: --index {index} is outside the run's {index_count(n_videos, per_index)} indexes", file=sys.stderr
        )
        return ExitCode.USAGE
    indices = range(n_videos) if index is None else videos_of_index(index, per_index, n_videos)
    holder = ModelHolder(ctx)
    failed: list[dict[str, str]] = []
    for i in indices:
        outcome = infer_video(ctx, i, holder, lambda key, n: video_bar(key, n, show_progress))
        print(f"{outcome.video}: {outcome.status} {outcome.reason}".rstrip(), file=sys.stderr)
        if outcome.status == "failed":
            failed.append({"video": outcome.video, "reason": outcome.reason})
        elif index is not None and outcome.cache_key:  # this pod writes its videos' LightlyOne files
            write_video_predictions(ctx, outcome.video, outcome.cache_key)
    if index is None:
        return ExitCode.BAD_INPUT if failed else ExitCode.OK
    if per_index == 1:
        video = ctx.videos[index].key
        reason = failed[0]["reason"] if failed else ""
        write_summary({"video": video, "status": "failed" if failed else "ok", "reason": reason})
        return ExitCode.BAD_INPUT if failed else ExitCode.OK
    summary = {"videos": [indices.start, indices.stop - 1], "failed": len(failed), "failedVideos": failed}
    write_summary(summary, optional=("failedVideos",))
    return ExitCode.OK


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
        # the run's exact failed videos (a chunk of the inference Job records its bad videos and goes on)
        failed = summary.convert.failed
        return {
            "predictionFiles": summary.convert.prediction_files,
            "skipped": summary.convert.skipped,
            "failed": len(failed),
            "failedVideos": failed[:MAX_FAILED_VIDEOS_IN_STATUS],
        }
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
    write_summary(stage_summary(ctx, stage, summary), optional=("perVideoSelected", "failedVideos"))
    if stage == stages_for(ctx.run.spec.selection is not None)[-1].name:
        mark_succeeded(ctx)
    return ExitCode.OK
