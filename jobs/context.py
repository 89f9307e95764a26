"""What every stage needs about a run: the validated manifest, its storages, its video list."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from framesift.api.manifest import load_run
from framesift.api.models import ActiveLearningRun
from framesift.jobs.published import ReplacedVideo, check_not_replaced
from framesift.jobs.storage import LocalStorage, ObjectInfo, Storage, join_key, open_storage
from framesift.jobs.video import DERIVED_NAME_EXTRA, MAX_NAME_BYTES, list_videos, name_collisions, names_too_long

log = logging.getLogger(__name__)

# The list stage freezes the run's video list in the output store (VIDEO_LIST under the run's
# folder); every later stage of a cluster run reads it there, so every pod of the inference Job
# agrees on what index N means even if the bucket changes meanwhile. (`--video-list FILE` still
# names a list file explicitly.)
VIDEO_LIST = "videos.json"
# Written by a run's last stage when it ends well: only such runs make a video "not new" for
# --new-only and schedules (a failed run's videos stay new; their inference results are reused).
SUCCEEDED = "succeeded.json"


class InputError(RuntimeError):
    """Bad input the user must fix (no videos, unreadable input): not a framesift failure."""


@dataclass
class RunContext:
    run: ActiveLearningRun
    base_dir: Path
    video_list_file: Path | None = None
    stored_list: bool = False  # read the list the list stage froze in the output (cluster Jobs)
    hidden_videos: list[str] = field(default_factory=list)  # skipped when listing: hidden path parts
    new_only: bool = False  # `--new-only`; spec.input.newOnly also turns it on
    break_lease: bool = False  # `--break-lease`: take the run's lease even from a live-looking holder
    already_inferred: list[str] = field(default_factory=list)  # skipped when listing: inferred by earlier runs

    @property
    def name(self) -> str:
        return self.run.metadata.name

    @functools.cached_property
    def input(self) -> Storage:
        return open_storage(self.run.spec.input, self.base_dir)

    @functools.cached_property
    def output(self) -> Storage:
        return open_storage(self.run.spec.output, self.base_dir)

    @functools.cached_property
    def videos(self) -> list[ObjectInfo]:
        if self.video_list_file is not None:
            return parse_video_list(self.video_list_file.read_text())
        if self.stored_list:
            key = self.run_key(VIDEO_LIST)
            if not self.output.exists(key):
                raise InputError(f"the run's video list {self.output.url(key)} is missing: its list stage has not run")
            return parse_video_list(self.output.read_text(key))
        spec = self.run.spec.input
        if isinstance(self.input, LocalStorage) and not self.input.root.is_dir():
            raise InputError(f"spec.input: the folder {self.input.root} does not exist (uri {spec.uri!r})")
        videos = list_videos(self.input, spec, self.hidden_videos)
        if self.hidden_videos:
            log.warning(
                "%d video file(s) skipped: a part of their path starts with '.' (hidden, or '..'): %s",
                len(self.hidden_videos),
                ", ".join(self.hidden_videos[:5]),
            )
        clashes = name_collisions(videos)
        if clashes:
            pairs = "; ".join(f"{' and '.join(keys)} → {key}" for key, keys in clashes[:5])
            raise InputError(
                f"spec.input: videos that differ only in their extension share one LightlyOne name ({pairs}); "
                "rename one of each, or leave one out with spec.input.exclude"
            )
        too_long = names_too_long(videos)
        if too_long:
            raise InputError(
                f"spec.input: {len(too_long)} video name(s) too long for the frame and prediction files made "
                f"from them (at most {MAX_NAME_BYTES - DERIVED_NAME_EXTRA} bytes of file name): "
                f"{', '.join(repr(k[:60] + '…') for k in too_long[:3])}; rename them, or leave them out with "
                "spec.input.exclude"
            )
        if not videos:
            raise InputError(
                f"spec.input: no videos under {self.input.uri} match include={spec.include} "
                f"exclude={spec.exclude} (video files end in .mp4 .m4v .hevc .mpg .mpeg .avi .mov .webm)"
            )
        try:
            check_not_replaced(self.output, videos)
        except ReplacedVideo as err:
            raise InputError(str(err)) from None
        if self.new_only or spec.new_only:
            seen = inferred_elsewhere(self.output, self.name)
            self.already_inferred = [v.key for v in videos if (v.key, v.identity) in seen]
            videos = [v for v in videos if (v.key, v.identity) not in seen]
        return videos

    def run_key(self, *parts: str) -> str:
        """A key under the run's own results folder in the output."""
        return join_key(".framesift", "runs", self.name, *parts)

    def person_key(self, *parts: str) -> str:
        """A key under runs/<run-name>/: what a person opens."""
        return join_key("runs", self.name, *parts)


def inferred_elsewhere(output: Storage, run_name: str) -> set[tuple[str, str]]:
    """(path, content identity) of every video that another run over this output took part in
    and that run succeeded: the results' pointers each run writes per video
    (`.framesift/runs/<run>/videos/`), of the runs whose SUCCEEDED marker exists."""
    pointers: list[tuple[str, str]] = []
    succeeded: set[str] = set()
    for obj in output.list(join_key(".framesift", "runs")):
        parts = obj.key.split("/")
        if len(parts) == 4 and parts[3] == SUCCEEDED:
            succeeded.add(parts[2])
        elif len(parts) == 5 and parts[3] == "videos" and parts[2] != run_name and parts[4].endswith(".json"):
            pointers.append((parts[2], obj.key))
    seen: set[tuple[str, str]] = set()
    for run, key in pointers:
        if run in succeeded:
            pointer = json.loads(output.read_text(key))
            if pointer.get("status") == "ok":
                seen.add((str(pointer["video"]), str(pointer.get("identity"))))
    return seen


def mark_succeeded(ctx: RunContext) -> None:
    """The run's last stage ended well: its videos are no longer new for later runs. Written once:
    a rerun that changes nothing leaves the output as it was."""
    import time

    key = ctx.run_key(SUCCEEDED)
    if not ctx.output.exists(key):
        ctx.output.write_text(key, json.dumps({"run": ctx.name, "at": time.time()}))


def video_list_document(videos: list[ObjectInfo]) -> list[dict[str, object]]:
    return [{"key": v.key, "size": v.size, "etag": v.etag, "mtime": v.mtime} for v in videos]


def parse_video_list(text: str) -> list[ObjectInfo]:
    return [ObjectInfo(e["key"], e["size"], e.get("etag"), e.get("mtime")) for e in json.loads(text)]


def freeze_video_list(ctx: RunContext) -> str:
    """List the input and store the sorted list under the run's folder; returns its key."""
    key = ctx.run_key(VIDEO_LIST)
    ctx.output.write_text(key, json.dumps(video_list_document(ctx.videos), indent=1))
    return key


def base_dir_for(run: ActiveLearningRun, run_file: Path, cwd: Path) -> Path:
    """Where relative local paths resolve: the manifest's folder (so a manifest and its videos
    travel together) — unless the input is not there but is relative to the working folder,
    which is what someone who typed the path in a shell meant."""
    manifest_dir = run_file.resolve().parent
    uri = run.spec.input.uri
    if "://" in uri or Path(uri).is_absolute():
        return manifest_dir
    if not (manifest_dir / uri).exists() and (cwd / uri).exists():
        log.info("relative paths resolve against the working folder %s (%s is not next to the manifest)", cwd, uri)
        return cwd
    return manifest_dir


def load_context(
    run_file: str | Path, video_list_file: str | Path | None = None, stored_list: bool = False
) -> RunContext:
    path = Path(run_file)
    run = load_run(path)
    video_list = Path(video_list_file) if video_list_file else None
    return RunContext(run, base_dir_for(run, path, Path.cwd()), video_list, stored_list)
