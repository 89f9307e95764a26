"""Gather what the inference stage left for a run: per video, its results or why it failed."""

from __future__ import annotations

from dataclasses import dataclass

from framesift.jobs import results
from framesift.jobs.context import RunContext
from framesift.jobs.storage import ObjectInfo


class StageOrderError(RuntimeError):
    """A stage ran before the stage it reads from finished."""


@dataclass
class VideoEntry:
    video: ObjectInfo
    cache_key: str | None  # None when the video failed
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.cache_key is not None


def run_entries(ctx: RunContext) -> list[VideoEntry]:
    """Every video of the run with its inference outcome; fails if any video was not inferred yet
    or changed since (the run must infer it again)."""
    entries, missing = [], []
    for video in ctx.videos:
        pointer = results.read_pointer(ctx.output, ctx.name, video.key)
        if pointer is None:
            missing.append(video.key)
            continue
        if pointer.get("identity") != video.identity:
            missing.append(f"{video.key} (changed since it was inferred)")
            continue
        if pointer["status"] == "ok":
            entries.append(VideoEntry(video, pointer["cacheKey"]))
        else:
            entries.append(VideoEntry(video, None, pointer.get("reason", "")))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise StageOrderError(f"inference has not finished for {len(missing)} video(s): {shown}; run infer first")
    return entries


FAILED_VIDEOS = "failed-videos.json"


def failed_videos(entries: list[VideoEntry]) -> list[dict[str, str]]:
    return [{"name": e.video.key, "reason": e.reason} for e in entries if not e.ok]


def write_failed_videos(ctx: RunContext, entries: list[VideoEntry]) -> str:
    """Every failed video of the run with its reason, in runs/<run>/failed-videos.json (the run's
    status names at most 20; this list has them all). Returns the key."""
    import json

    key = ctx.person_key(FAILED_VIDEOS)
    ctx.output.write_text(key, json.dumps(failed_videos(entries), indent=1))
    return key


def load_ok_results(ctx: RunContext, entries: list[VideoEntry]) -> list[results.StoredResults]:
    """The finished videos' results, manifests read, arrays left in the store until a stage
    reads them (selection streams them; export reads only the picked videos' boxes)."""
    return results.stored_results(ctx.output, [e.cache_key for e in entries if e.cache_key])
