"""Which content each published video name stands for.

Exported frames are named after their video (`frames/yard-02-mp4.png`), and earlier runs' files
(export.json, Label Studio tasks, COCO, `.lightly/` predictions) point at those names. A new clip
put in place of `yard.mp4` would overwrite them with other pictures. So export records, per video
name, the content identity it published (`.framesift/published/<video id>/<identity digest>.json`:
the identity is in the key, so one listing tells every video's) and a later run over the same
output refuses a video whose name was published with other content — at listing, before any
inference, with both identities and the fix.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable

from framesift.jobs.results import video_id
from framesift.jobs.storage import ObjectInfo, Storage, join_key

PUBLISHED_PREFIX = join_key(".framesift", "published")
SHOWN = 3


class ReplacedVideo(RuntimeError):
    """A video's name was published by an earlier run with other content."""


def content_of(identity: str) -> str:
    """What says "the same content": the ETag; locally the size (a copy without -p changes only
    the mtime, and a different clip of the very same byte size is not what this guards against)."""
    return identity.split(":mtime:", 1)[0] if identity.startswith("size:") else identity


def _digest(identity: str) -> str:
    return hashlib.sha256(content_of(identity).encode()).hexdigest()[:16]


def marker_key(video_key: str, identity: str) -> str:
    return join_key(PUBLISHED_PREFIX, video_id(video_key), f"{_digest(identity)}.json")


def record_published(output: Storage, videos: Iterable[ObjectInfo], run: str) -> None:
    for video in videos:
        key = marker_key(video.key, video.identity)
        if not output.exists(key):
            output.write_text(key, json.dumps({"video": video.key, "identity": video.identity, "run": run}))


def check_not_replaced(output: Storage, videos: list[ObjectInfo]) -> None:
    """Raise ReplacedVideo when a video's name was published with other content."""
    published: dict[str, list[str]] = defaultdict(list)
    for obj in output.list(PUBLISHED_PREFIX + "/"):
        parts = obj.key.split("/")
        if len(parts) == 4:
            published[parts[2]].append(obj.key)
    conflicts = []
    for video in videos:
        keys = published.get(video_id(video.key))
        if keys and marker_key(video.key, video.identity) not in keys:
            earlier = json.loads(output.read_text(keys[0]))
            was, by = earlier.get("identity"), earlier.get("run")
            conflicts.append(f"{video.key} (now {video.identity!r}; run {by!r} published {was!r})")
    if conflicts:
        raise ReplacedVideo(
            f"{len(conflicts)} video(s) hold other content than earlier runs published under their names: "
            f"{'; '.join(conflicts[:SHOWN])}{' …' if len(conflicts) > SHOWN else ''}. Their frames, export.json, "
            "Label Studio and COCO files would point at other pictures: give the new clips new names, or use a "
            "new spec.output for them"
        )
