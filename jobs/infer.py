"""Stage 1, per video: decode → quality + YOLO boxes + embedding (one pass) → columnar results.

Decoding runs in its own thread and feeds the model through a bounded queue, so the decoder
works while the network runs and memory holds at most a few batches of frames. Results stream
into Parquet row groups on local disk, then publish to the output with the marker last.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from framesift import __version__
from framesift.jobs import results
from framesift.jobs.context import RunContext
from framesift.jobs.model import FrameDetections, LoadedModel, OnePassDetector, load_model, weights_fingerprint
from framesift.jobs.quality import RowStats, frame_measures, with_neighbours
from framesift.jobs.storage import ObjectInfo, process_temp_dir
from framesift.jobs.video import DecodedFrame, DecodeLog, VideoError, decode, probe

log = logging.getLogger(__name__)

ROW_GROUP = 1024


@dataclass
class VideoOutcome:
    video: str
    status: str  # "ok" | "cached" | "failed"
    reason: str = ""
    frames: int = 0
    inferred: int = 0
    corrupt: int = 0
    seconds: float = 0.0
    cache_key: str = ""
    decode_errors: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.inferred / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Item:
    frame: DecodedFrame
    quality: tuple[float, float, float]
    pixel_hash: str


_END = object()


def _producer(path: Path, stride: int, out: queue.Queue[Any], dlog: DecodeLog, stop: threading.Event) -> None:
    def measured() -> Iterator[tuple[tuple[DecodedFrame, float, float], RowStats]]:
        for frame in decode(path, stride, dlog):
            stats, sharpness, brightness = frame_measures(frame.image)
            yield (frame, sharpness, brightness), stats

    try:
        # the corruptness ratio needs the next frame (a letterbox is in the neighbours too)
        for (frame, sharpness, brightness), ratio in with_neighbours(measured()):
            digest = hashlib.blake2b(np.ascontiguousarray(frame.image).data, digest_size=16).hexdigest()
            while not stop.is_set():
                try:
                    out.put(_Item(frame, (ratio, sharpness, brightness), digest), timeout=0.5)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        out.put(_END)
    except BaseException as err:  # hand every failure to the consumer, which re-raises it
        out.put(err)


class ModelHolder:
    """Loads the model on first use, so a run whose videos are all cached never loads it."""

    def __init__(self, ctx: RunContext):
        self.spec = ctx.run.spec.model
        self.base_dir = ctx.base_dir
        self._model: LoadedModel | None = None
        self._detector: OnePassDetector | None = None
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = (
                self._model.fingerprint if self._model else weights_fingerprint(self.spec, base_dir=self.base_dir)
            )
        return self._fingerprint

    @property
    def detector(self) -> OnePassDetector:
        if self._detector is None:
            self._model = load_model(self.spec, self.base_dir)
            self._detector = OnePassDetector(self._model, self.spec)
        return self._detector

    def categories(self) -> dict[int, str]:
        if self.spec.classes:
            return {cid: name for name, cid in sorted(self.spec.classes.items(), key=lambda kv: kv[1])}
        names = self.detector.model.names
        return {i: names[i] for i in sorted(names)}


def _fetch(ctx: RunContext, video: ObjectInfo) -> tuple[Path, bool]:
    local = ctx.input.local_path(video.key)
    if local is not None:
        return local, False
    tmp = Path(tempfile.mkdtemp(dir=process_temp_dir(), prefix="video-")) / Path(video.key).name
    ctx.input.download(video.key, tmp)
    return tmp, True


ProgressFactory = Callable[[str, int | None], Any]


class ResultSink:
    """One video's results on local disk: frame rows (quality, pixel hash, embedding) and box
    rows, each a Parquet file written in row groups of ROW_GROUP frames."""

    def __init__(self, frames_path: Path, detections_path: Path):
        self.frames_path = frames_path
        self.detections_path = detections_path
        self._frames_writer: pq.ParquetWriter | None = None
        self._dets_writer: pq.ParquetWriter | None = None
        self._frames: list[tuple[_Item, np.ndarray]] = []
        self._detections: list[tuple[int, FrameDetections]] = []
        self.inferred = 0
        self.dim = 0
        self.object_dim = 0

    def add(self, item: _Item, embedding: np.ndarray, detections: FrameDetections) -> None:
        self._frames.append((item, embedding))
        self.dim = embedding.shape[0]
        if detections.embeddings is not None:
            self.object_dim = detections.embeddings.shape[1]
        if len(detections.scores):
            self._detections.append((item.frame.index, detections))
        self.inferred += 1
        if len(self._frames) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        rows = self._frames
        if rows:
            table = results.frames_table(
                np.array([r[0].frame.index for r in rows], np.int32),
                np.array([r[0].frame.pts if r[0].frame.pts is not None else -1 for r in rows], np.int64),
                np.array([r[0].frame.time_s for r in rows], np.float64),
                np.array([r[0].quality for r in rows], np.float32),
                [r[0].pixel_hash for r in rows],
                np.stack([r[1] for r in rows]),
            )
            self._frames_writer = self._frames_writer or pq.ParquetWriter(
                self.frames_path, table.schema, compression="zstd"
            )
            self._frames_writer.write_table(table)
            rows.clear()
        dets = self._detections
        probs: list[np.ndarray | None] = []
        for _, d in dets:
            probs.extend(list(d.probabilities) if d.probabilities is not None else [None] * len(d.scores))
        table = results.detections_table(
            np.array([i for i, d in dets for _ in d.scores], np.int32),
            np.concatenate([d.class_ids for _, d in dets]) if dets else np.zeros(0, np.int32),
            np.concatenate([d.boxes_xywh for _, d in dets]) if dets else np.zeros((0, 4), np.float32),
            np.concatenate([d.scores for _, d in dets]) if dets else np.zeros(0, np.float32),
            probs,
            np.concatenate([_object_embeddings(d) for _, d in dets]) if dets else np.zeros((0, 0), np.float32),
            self.object_dim,
        )
        self._dets_writer = self._dets_writer or pq.ParquetWriter(
            self.detections_path, table.schema, compression="zstd"
        )
        self._dets_writer.write_table(table)
        dets.clear()

    def close(self) -> None:
        for writer in (self._frames_writer, self._dets_writer):
            if writer is not None:
                writer.close()


def _object_embeddings(detections: FrameDetections) -> np.ndarray:
    if detections.embeddings is None:
        return np.zeros((len(detections.scores), 0), np.float32)
    return detections.embeddings


def _run_model(path: Path, holder: ModelHolder, stride: int, sink: ResultSink, dlog: DecodeLog, progress: Any) -> None:
    """Decode + infer one video into the sink: the decoder thread feeds batches to the model."""
    detector = holder.detector
    batch_size = holder.spec.batch
    items: queue.Queue[Any] = queue.Queue(maxsize=2 * batch_size)
    stop = threading.Event()
    thread = threading.Thread(target=_producer, args=(path, stride, items, dlog, stop), daemon=True)
    thread.start()

    def run_batch(batch: list[_Item]) -> None:
        detections, embeddings = detector([b.frame.image for b in batch])
        for item, det, emb in zip(batch, detections, embeddings, strict=True):
            sink.add(item, emb, det)
        progress.update(len(batch))

    try:
        batch: list[_Item] = []
        while True:
            got = items.get()
            if got is _END:
                break
            if isinstance(got, BaseException):
                raise got
            batch.append(got)
            if len(batch) >= batch_size:
                run_batch(batch)
                batch = []
        if batch:
            run_batch(batch)
        sink.flush()
    finally:
        stop.set()
        thread.join(timeout=10)
        sink.close()


def _pointer(ctx: RunContext, video: ObjectInfo, status: str, **fields: str) -> None:
    """Record which cache entry (or failure) this run used for the video."""
    results.write_pointer(
        ctx.output, ctx.name, {"video": video.key, "identity": video.identity, "status": status, **fields}
    )


def infer_video(ctx: RunContext, index: int, holder: ModelHolder, progress_factory: ProgressFactory) -> VideoOutcome:
    """Infer video `index` of the run (or find it cached) and record which results the run uses."""
    video = ctx.videos[index]
    spec = ctx.run.spec
    key = results.cache_key(video, holder.fingerprint, spec.model)
    started = time.monotonic()
    cached = results.read_manifest(ctx.output, key)
    if cached is not None:
        outcome = VideoOutcome(
            video.key,
            "cached",
            frames=cached["frames"],
            inferred=cached["inferredFrames"],
            cache_key=key,
            decode_errors=cached.get("decodeErrors", []),
        )
        _pointer(ctx, video, "ok", cacheKey=key)
        return outcome

    path, temporary = None, False
    try:
        path, temporary = _fetch(ctx, video)
        info = probe(path)
        dlog = DecodeLog()
        with tempfile.TemporaryDirectory(dir=process_temp_dir(), prefix="results-") as tmp:
            frames_file, dets_file = Path(tmp) / "frames.parquet", Path(tmp) / "detections.parquet"
            total = info.header_frames // spec.model.frame_stride if info.header_frames else None
            sink = ResultSink(frames_file, dets_file)
            with progress_factory(video.key, total) as progress:
                _run_model(path, holder, spec.model.frame_stride, sink, dlog, progress)
            inferred, dim = sink.inferred, sink.dim
            seconds = time.monotonic() - started
            decode_errors = dlog.errors + ([dlog.truncated] if dlog.truncated else [])
            manifest = {
                "video": video.key,
                "identity": video.identity,
                "cacheKey": key,
                "frames": dlog.frames,
                "inferredFrames": inferred,
                "frameStride": spec.model.frame_stride,
                "width": info.width,
                "height": info.height,
                "fps": info.fps,
                "codec": info.codec,
                "headerFrames": info.header_frames,
                "decodeErrors": decode_errors,
                "embeddingDim": dim,
                "categories": {str(k): v for k, v in holder.categories().items()},
                "model": {"weights": spec.model.weights, "fingerprint": holder.fingerprint},
                "seconds": round(seconds, 3),
                "framesift": __version__,
            }
            prefix = results.result_prefix(key)
            ctx.output.upload_file(frames_file, f"{prefix}/frames.parquet")
            ctx.output.upload_file(dets_file, f"{prefix}/detections.parquet")
            results.write_manifest(ctx.output, key, manifest)
        _pointer(ctx, video, "ok", cacheKey=key)
        return VideoOutcome(
            video.key,
            "ok",
            frames=dlog.frames,
            inferred=inferred,
            seconds=seconds,
            cache_key=key,
            decode_errors=decode_errors,
        )
    except VideoError as err:
        reason = str(err)  # in words; the caller says it once, the decoder's message stays in the pointer
        _pointer(ctx, video, "failed", reason=reason, detail=err.detail)
        return VideoOutcome(video.key, "failed", reason=reason, seconds=time.monotonic() - started)
    finally:
        if temporary and path is not None:
            path.unlink(missing_ok=True)
            path.parent.rmdir()
