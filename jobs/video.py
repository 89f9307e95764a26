"""Video listing, frame naming and decoding with PyAV.

Frame indices count from 0 in the order PyAV yields frames; the frame count comes from decoding,
never from the container header (headers can be wrong), as LightlyOne does.
"""

from __future__ import annotations

import contextlib
import fnmatch
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from framesift.api.models import VIDEO_EXTENSIONS, InputSpec
from framesift.jobs.storage import ObjectInfo, Storage


class VideoError(RuntimeError):
    """A video that cannot be opened or decoded (bad input, not a framesift failure), said in
    words; `detail` keeps the decoder's own message, recorded with the video's results."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


def _in_words(err: Exception) -> str:
    text = str(err)
    if "Invalid data found" in text or "moov atom not found" in text:
        return "not a video file, or damaged where its header should be"
    if "End of file" in text or "Truncat" in text:
        return "truncated"
    if isinstance(err, UnicodeDecodeError):
        return "cannot read its container metadata"
    if isinstance(err, OSError) and not isinstance(err, av.error.FFmpegError):
        return f"cannot read the file ({err.strerror or err})"
    return "cannot be opened by the decoder"


# ----- listing ------------------------------------------------------------------------------


def _matches(key: str, patterns: list[str]) -> bool:
    name = posixpath.basename(key)
    return any(fnmatch.fnmatchcase(key, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def is_video(key: str) -> bool:
    return key.lower().endswith(VIDEO_EXTENSIONS)


def select_videos(objects: list[ObjectInfo], spec: InputSpec, hidden: list[str] | None = None) -> list[ObjectInfo]:
    """The run's videos, sorted by path so index N always means the same video. Video files with
    a path part that starts with "." (hidden folders, `..`) are skipped and, when `hidden` is
    given, collected there so the caller can say so."""
    relevant = set(spec.relevant_filenames) if spec.relevant_filenames is not None else None
    chosen = []
    for obj in objects:
        parts = obj.key.split("/")
        if any(p.startswith(".") for p in parts):  # .lightly/, .framesift/, hidden files
            if hidden is not None and is_video(obj.key) and parts[0] not in (".lightly", ".framesift"):
                hidden.append(obj.key)
            continue
        if not is_video(obj.key) or not _matches(obj.key, spec.include) or _matches(obj.key, spec.exclude):
            continue
        if relevant is not None and obj.key not in relevant:
            continue
        chosen.append(obj)
    return sorted(chosen, key=lambda o: o.key)


def list_videos(storage: Storage, spec: InputSpec, hidden: list[str] | None = None) -> list[ObjectInfo]:
    return select_videos(list(storage.list()), spec, hidden)


def name_collisions(videos: list[ObjectInfo]) -> list[tuple[str, list[str]]]:
    """Videos that map to one LightlyOne metadata file (its path without the extension:
    cam.mp4 and cam.mov are both .lightly/metadata/cam.json), as (that file, the videos)."""
    from framesift.jobs.formats.lightly import metadata_key

    groups: dict[str, list[str]] = {}
    for video in videos:
        groups.setdefault(metadata_key(video.key), []).append(video.key)
    return [(key, keys) for key, keys in sorted(groups.items()) if len(keys) > 1]


# ----- names --------------------------------------------------------------------------------

MAX_NAME_BYTES = 255  # a file name (one path part) on ext4, XFS, APFS, NTFS; S3 keys are longer
# the longest file name framesift derives from a video's (a frame: <stem>-<index up to 9
# digits>-<ext>.<image or prediction suffix>)
DERIVED_NAME_EXTRA = len("-123456789-") + len(".json")


def names_too_long(videos: list[ObjectInfo]) -> list[str]:
    """Videos whose frame and prediction file names would exceed MAX_NAME_BYTES."""
    return [v.key for v in videos if len(posixpath.basename(v.key).encode()) + DERIVED_NAME_EXTRA > MAX_NAME_BYTES]


def frame_stem(video_key: str, index: int, n_frames: int) -> str:
    """`dir/clip.avi`, frame 7 of 795 → `dir/clip-007-avi` (SELECTION.md §1)."""
    directory, name = posixpath.split(video_key)
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    digits = len(str(n_frames))
    return posixpath.join(directory, f"{stem}-{index:0{digits}d}-{ext}")


def frame_name(video_key: str, index: int, n_frames: int, extension: str = "png") -> str:
    return f"{frame_stem(video_key, index, n_frames)}.{extension}"


def video_name(video_key: str) -> str:
    """The default `video_name` metadata value: the file stem."""
    return posixpath.basename(video_key).rpartition(".")[0] or posixpath.basename(video_key)


# ----- decoding -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    codec: str
    header_frames: int


@dataclass
class DecodedFrame:
    index: int
    pts: int | None
    time_s: float
    image: np.ndarray  # H×W×3 uint8, BGR (what OpenCV and Ultralytics expect)


@dataclass
class DecodeLog:
    """What went wrong while decoding: frames the decoder dropped, a stream cut short."""

    frames: int = 0
    errors: list[str] = field(default_factory=list)
    truncated: str | None = None


def open_video(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VideoError(_in_words(err), detail=str(err)) from None
    if not container.streams.video:
        container.close()
        raise VideoError("no video stream")
    return container, container.streams.video[0]


def probe(path: Path) -> VideoInfo:
    container, stream = open_video(path)
    with container:
        ctx = stream.codec_context
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        return VideoInfo(ctx.width, ctx.height, fps, ctx.name, int(stream.frames or 0))


@dataclass
class _Pass:
    """One decoding pass over a file: what it saw go wrong, and how many packets held data."""

    errors: list[str] = field(default_factory=list)
    truncated: str | None = None
    packets: int = 0


def _frames(path: Path, threaded: bool, seen: _Pass) -> Iterator[tuple[Any, int | None, float]]:
    """(frame, pts, time base) in decode order; packet errors and a broken stream go into `seen`."""
    container, stream = open_video(path)
    if threaded:
        stream.thread_type = "AUTO"  # frame threading: same frames, same order, faster
    time_base = float(stream.time_base) if stream.time_base else 0.0
    index = 0
    with container:
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as err:
                seen.truncated = f"stream ends in error after frame {index - 1}: {err}"
                break
            seen.packets += packet.size > 0
            try:
                frames = packet.decode()
            except av.error.FFmpegError as err:
                seen.errors.append(f"undecodable packet after frame {index - 1}: {err}")
                continue
            for frame in frames:
                yield frame, frame.pts, time_base
                index += 1


def decode(path: Path, stride: int = 1, log: DecodeLog | None = None) -> Iterator[DecodedFrame]:
    """Every `stride`-th frame, in decode order, with its index among ALL frames.

    A packet the decoder rejects is logged and skipped (the frame does not exist, as for any
    decoder); a container that ends early or breaks is logged as truncated after the last good
    frame. Decoding is frame-threaded for speed; a threaded decoder that meets damage can drop
    the frames it holds in flight and swallow the error, so a damaged-looking pass (an error, a
    broken stream, fewer frames than packets with data) is followed by a single-threaded pass
    that yields the frames the first one lost and records what went wrong. Raises VideoError
    when the file cannot be opened or yields no frame at all.
    """
    log = log if log is not None else DecodeLog()
    fps = 0.0
    with contextlib.suppress(VideoError):
        info = probe(path)
        fps = info.fps
    index = 0
    seen = _Pass()
    for frame, pts, time_base in _frames(path, threaded=True, seen=seen):
        if index % stride == 0:
            yield _decoded(frame, index, pts, time_base, fps)
        index += 1
    if seen.errors or seen.truncated or index < seen.packets:
        again = _Pass()
        count = 0
        for frame, pts, time_base in _frames(path, threaded=False, seen=again):
            if count >= index and count % stride == 0:
                yield _decoded(frame, count, pts, time_base, fps)
            count += 1
        index = max(index, count)
        seen = again if (again.errors or again.truncated or count > 0) else seen
    log.errors, log.truncated, log.frames = list(seen.errors), seen.truncated, index
    if index == 0:
        raise VideoError("no decodable frame" + (f" ({log.errors[0]})" if log.errors else ""))


def _decoded(frame: Any, index: int, pts: int | None, time_base: float, fps: float) -> DecodedFrame:
    t = pts * time_base if pts is not None and time_base else (index / fps if fps else 0.0)
    return DecodedFrame(index, pts, float(t), frame.to_ndarray(format="bgr24"))


# ----- exact frame access -----------------------------------------------------------------------


def frame_pts_table(path: Path) -> tuple[list[int], list[int]] | None:
    """(pts of frame i for every i, keyframe pts) from one demux pass, no decoding; None when
    packets lack timestamps (then only a sequential decode knows which frame is which)."""
    container, stream = open_video(path)
    pts: list[int] = []
    keys: list[int] = []
    with container:
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    return None
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except av.error.FFmpegError:
            return None
    if len(set(pts)) != len(pts) or not keys:
        return None
    return sorted(pts), sorted(keys)  # the decoder emits frames in presentation order


def _sequential(path: Path, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    targets = set(wanted)
    last = max(wanted)
    for frame in decode(path):
        if frame.index in targets:
            yield frame.index, frame.image
        if frame.index >= last:
            return


def extract_frames(path: Path, indices: list[int], decode_errors: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """The frames at `indices` (decode-order indices, as `decode` counts them), pixel-identical
    to a sequential decode, in ascending index order.

    Sorts the indices and sweeps forward; jumps (seek to the keyframe before a target, then
    decode forward to its exact pts) only where a keyframe lies between the current position
    and the target, so sparse-keyframe streams are never decoded twice. Falls back to a
    sequential decode when the stream has no usable timestamps or had decode errors (then a
    frame's index is only known by counting).
    """
    wanted = sorted(set(indices))
    if not wanted:
        return
    table = None if decode_errors else frame_pts_table(path)
    if table is None:
        yield from _sequential(path, wanted)
        return
    pts_of, keyframes = table
    if wanted[-1] >= len(pts_of):
        raise VideoError(f"frame {wanted[-1]} requested, the video has {len(pts_of)} frames")
    container, stream = open_video(path)
    stream.thread_type = "AUTO"
    with container:
        position: int | None = None  # pts of the last decoded frame
        frames: Iterator[av.VideoFrame] | None = None
        for index in wanted:
            target = pts_of[index]
            key = keyframes[max(0, _bisect_right(keyframes, target) - 1)]
            if frames is None or position is None or position >= target or key > position:
                container.seek(key, stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
            found = None
            for frame in frames:
                position = frame.pts
                if frame.pts == target:
                    found = frame
                    break
                if frame.pts is not None and frame.pts > target:
                    break
            if found is None:  # timestamps disagree with the demuxer: count instead
                container.close()
                yield from _sequential(path, [i for i in wanted if i >= index])
                return
            yield index, found.to_ndarray(format="bgr24")


def _bisect_right(values: list[int], x: int) -> int:
    import bisect

    return bisect.bisect_right(values, x)
