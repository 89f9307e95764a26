"""Frames that already have human labels (`spec.selector.labeled`): a COCO file or a Label Studio
export (an s3:// URI read with the output's endpoint and credentials, or a path relative to the
manifest's folder). They count as datapool in the selection: never picked again, and diversity
moves away from them."""

from __future__ import annotations

import json
import logging
import posixpath
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from framesift.jobs.context import RunContext
from framesift.jobs.selection.data import SelectionData, parse_frame_name
from framesift.jobs.selection.sources import SourceError, video_runs
from framesift.jobs.storage import open_storage

log = logging.getLogger(__name__)
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


UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio's prefix on uploaded file names
UNMATCHED_SHOWN = 3


def _frame_name(reference: str) -> str:
    """A frame name from a file name or an image URL (presigned or not)."""
    return frame_name_candidates(reference)[0]


def frame_name_candidates(reference: str) -> list[str]:
    """The frame names a label's image reference may mean, most likely first: a file name, an
    https URL (presigned or not), `s3://bucket/key` (the key taken whole: names may hold `?`,
    `#` or `%20`), Label Studio's local-files URL (`…/data/local-files/?d=path`, percent-encoded)
    and upload path (`/data/upload/3/5f1b2c3d-<name>`, a hash before the name)."""
    if reference.startswith("s3://"):
        raw = reference[len("s3://") :].split("/", 1)[-1]
        paths = [raw, unquote(raw)]
    elif "://" in reference or reference.startswith("/data/"):
        parsed = urlparse(reference)
        local = parse_qs(parsed.query).get("d")
        paths = [unquote(local[0]) if local else unquote(parsed.path)]
        if local:
            paths.append(local[0])
    else:
        paths = [reference]
    names: list[str] = []
    for path in paths:
        name = path.rsplit(FRAMES_PREFIX, 1)[1] if FRAMES_PREFIX in path else path.lstrip("/")
        names.append(name)
        base = posixpath.basename(name)
        if "/data/upload/" in reference and UPLOAD_PREFIX.match(base):
            names.append(posixpath.join(posixpath.dirname(name), UPLOAD_PREFIX.sub("", base)))
            names.append(UPLOAD_PREFIX.sub("", base))
    return list(dict.fromkeys(names))


def references(document: Any) -> list[str]:
    """COCO: images[].file_name; Label Studio: every task's data values (image URLs), JSON and
    JSON-MIN exports alike (JSON-MIN puts the image at the top level of each item)."""
    if isinstance(document, dict) and isinstance(document.get("images"), list):
        out = []
        for k, image in enumerate(document["images"]):
            if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
                raise SourceError(
                    f"spec.selector.labeled: images[{k}] of the COCO file is {image!r}: expected an object "
                    "with a file_name string"
                )
            out.append(image["file_name"])
        return out
    if isinstance(document, list):
        out = []
        for k, task in enumerate(document):
            if not isinstance(task, dict):
                raise SourceError(f"spec.selector.labeled: item {k} of the Label Studio export is not an object")
            data = task.get("data", task)  # JSON-MIN: the item itself holds the image
            if not isinstance(data, dict):
                raise SourceError(
                    f"spec.selector.labeled: item {k}'s data is {data!r}: expected an object of image URLs "
                    "(export the project as JSON or JSON-MIN)"
                )
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
    frame name of the run. Says how many labels matched; fails when none does (a labels file of
    another output, or a naming this cannot read) unless the run is new-only (earlier videos'
    labels then match nothing here by design)."""
    uri = ctx.run.spec.selector.labeled
    if not uri:
        return []
    labels = references(_read(ctx, uri))
    candidates_of = [frame_name_candidates(reference) for reference in labels]
    exact = data.rows_of({c for candidates in candidates_of for c in candidates})
    found: set[int] = set()
    unmatched: list[str] = []
    videos_by_base: dict[str, list[str]] | None = None
    for reference, candidates in zip(labels, candidates_of, strict=True):
        hit = next((exact[c] for c in candidates if c in exact), None)
        if hit is not None:
            found.add(hit)
            continue
        if videos_by_base is None:
            videos_by_base = {}
            for video in video_runs(data.videos)[0]:
                videos_by_base.setdefault(posixpath.basename(video), []).append(video)
        row = _by_file_name(data, candidates, videos_by_base)
        if row is None:
            unmatched.append(reference)
        else:
            found.add(row)
    if labels and not found and not (ctx.new_only or ctx.run.spec.input.new_only):
        raise SourceError(
            f"spec.selector.labeled: none of the {len(labels)} labels in {uri} names a frame of this run "
            f"(e.g. {', '.join(repr(u) for u in unmatched[:UNMATCHED_SHOWN])}): is it the export of this "
            "output's frames?"
        )
    if unmatched:
        log.info(
            "spec.selector.labeled: %d of %d labels matched frames of this run; %d did not (e.g. %s)",
            len(labels) - len(unmatched),
            len(labels),
            len(unmatched),
            ", ".join(unmatched[:UNMATCHED_SHOWN]),
        )
    else:
        log.info("spec.selector.labeled: all %d labels matched frames of this run", len(labels))
    return sorted(data.file_names[row] for row in found)


def _by_file_name(data: SelectionData, candidates: list[str], videos_by_base: dict[str, list[str]]) -> int | None:
    """The one frame whose file name (without folders) is a candidate's, if exactly one."""
    for name in candidates:
        base = posixpath.basename(name)
        parsed = parse_frame_name(base)
        if parsed is None:
            continue
        paths = [posixpath.join(posixpath.dirname(v), base) for v in videos_by_base.get(parsed[0], [])]
        matches = data.rows_of(paths)
        if len(matches) == 1:
            return next(iter(matches.values()))
    return None
