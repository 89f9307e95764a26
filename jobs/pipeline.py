"""The embedded default: every stage of a run, in one process, on one machine.

The same functions back `framesift job <stage>` in the cluster; here they run in order, with
one model load for all videos and progress bars on stderr.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from framesift.jobs.context import RunContext
from framesift.jobs.convert import ConvertOutcome, convert
from framesift.jobs.infer import ModelHolder, VideoOutcome, infer_video
from framesift.jobs.model import resolve_weights
from framesift.jobs.progress import format_table, video_bar
from framesift.jobs.results import read_frame_column

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
    from framesift.jobs.select import check_engine

    check_engine(ctx.run)
    _ = ctx.videos
    ctx.output.check_writable()
    resolve_weights(ctx.run.spec.model.weights, ctx.base_dir)


def count_corrupt(ctx: RunContext, outcome: VideoOutcome) -> int:
    if not outcome.cache_key:
        return 0
    ratios = read_frame_column(ctx.output, outcome.cache_key, "uniform_row_ratio")
    return int(np.count_nonzero(ratios > ctx.run.spec.quality.corruption_threshold))


def infer_all(ctx: RunContext, summary: RunSummary, show_progress: bool) -> None:
    holder = ModelHolder(ctx)
    total = len(ctx.videos)
    for index, video in enumerate(ctx.videos):
        label = f"[{index + 1}/{total}] {video.key}"
        outcome = infer_video(ctx, index, holder, lambda _k, n, label=label: video_bar(label, n, show_progress))
        if outcome.status == "cached":
            print(f"{label}: unchanged since the last run, inference skipped", file=sys.stderr)
        elif outcome.status == "failed":
            print(f"{label}: FAILED: {outcome.reason}", file=sys.stderr)
        summary.videos.append(outcome)
        summary.corrupt_frames[video.key] = count_corrupt(ctx, outcome)


Stage = Callable[[RunContext, RunSummary], None]


def run_local(
    ctx: RunContext, show_progress: bool = True, later_stages: list[tuple[str, Stage]] | None = None
) -> RunSummary:
    summary = RunSummary()
    preflight(ctx)

    started = time.monotonic()
    infer_all(ctx, summary, show_progress)
    summary.stage_seconds["infer"] = time.monotonic() - started

    started = time.monotonic()
    summary.convert = convert(ctx)
    summary.stage_seconds["convert"] = time.monotonic() - started

    for name, stage in later_stages or []:
        started = time.monotonic()
        stage(ctx, summary)
        summary.stage_seconds[name] = time.monotonic() - started
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
