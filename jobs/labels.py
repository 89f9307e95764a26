"""Frames that already have human labels (`spec.selector.labeled`): a COCO file or a Label Studio
export, read from a URI next to the output (same endpoint and credentials). They count as
datapool in the selection: never picked again, and diversity moves away from them."""

from __future__ import annotations

import json
import posixpath
from typing import Any
from urllib.parse import unquote, urlparse

from framesift.jobs.context import RunContext
from framesift.jobs.selection.data import SelectionData, parse_frame_name
from framesift.jobs.selection.sources import SourceError, video_runs
from framesift.jobs.storage import open_storage

FRAMES_PREFIX = "frames/"  # where framesift's export puts frames (their URLs end in frames/<name>)


def _read(ctx: RunContext, uri: str) -> Any:
    head, _, name = uri.rstrip("/").rpartition("/")
    location = ctx.run.spec.output.model_copy(update={"uri": (head or ".") + "/"})
    store = open_storage(location, ctx.base_dir)
    if not store.exists(name):
        raise SourceError(f"spec.selector.labeled: {uri} does not exist")
    try:
        return json.loads(store.read_text(name))
    except ValueError as err:
        raise SourceError(f"spec.selector.labeled: {uri} is not JSON ({err})") from None


def _frame_name(reference: str) -> str:
    """A frame name from a file name or an image URL (presigned or not)."""
    path = unquote(urlparse(reference).path) if "://" in reference else reference
    if FRAMES_PREFIX in path:
        return path.rsplit(FRAMES_PREFIX, 1)[1]
    return path.lstrip("/")


def references(document: Any) -> list[str]:
    """COCO: images[].file_name; Label Studio: every task's data values (image URLs)."""
    if isinstance(document, dict) and isinstance(document.get("images"), list):
        return [str(image["file_name"]) for image in document["images"] if "file_name" in image]
    if isinstance(document, list):
        out = []
        for task in document:
            data = task.get("data", {}) if isinstance(task, dict) else {}
            out += [str(v) for v in data.values() if isinstance(v, str)]
        return out
    raise SourceError("spec.selector.labeled: expected a COCO file (with images) or a Label Studio export (a list)")


def labels_digest(ctx: RunContext) -> str | None:
    """Identifies what the labels file says (a new export with the same URI changes it)."""
    import hashlib

    uri = ctx.run.spec.selector.labeled
    if not uri:
        return None
    return hashlib.sha256("\n".join(sorted(references(_read(ctx, uri)))).encode()).hexdigest()


def labelled_frames(ctx: RunContext, data: SelectionData) -> list[str]:
    """The labelled frames among the run's frames: exact names, else a unique match by file name
    (labelling tools often keep only the file name). Looked up per label, not by indexing every
    frame name of the run."""
    uri = ctx.run.spec.selector.labeled
    if not uri:
        return []
    names = [_frame_name(reference) for reference in references(_read(ctx, uri))]
    exact = data.rows_of(names)
    found = set(exact)
    unmatched = [name for name in names if name not in exact]
    videos_by_base: dict[str, list[str]] = {}
    for video in video_runs(data.videos)[0] if unmatched else []:
        videos_by_base.setdefault(posixpath.basename(video), []).append(video)
    for name in unmatched:
        base = posixpath.basename(name)
        parsed = parse_frame_name(base)
        if parsed is None:
            continue
        candidates = [posixpath.join(posixpath.dirname(v), base) for v in videos_by_base.get(parsed[0], [])]
        matches = data.rows_of(candidates)
        if len(matches) == 1:
            found.update(matches)
    return sorted(found)
