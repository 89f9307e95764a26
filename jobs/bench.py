"""`framesift bench ...`: throughput as ratios against a baseline measured in the same run.

- infer: (a) the seed tutorial's way — `model.predict(video)` per video, a second pass for
  embeddings, one JSON file written per frame as results arrive — against (b) framesift's
  infer + convert, and both against the model's bare forward pass on the same frames.
- select: the builtin engine at 100 k and 1 M frames (d = 448, 1 000 picks, the seed's
  five-strategy config), time and peak memory, and a naive full-recompute reference on a subset
  that must pick exactly the same frames.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
SEED_CLASS_TARGET = {"person": 0.33, "bicycle": 0.34, "car": 0.33}
SEED_SELECTION = {
    "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {
            "input": {"type": "PREDICTIONS", "task": "yolov8_detection", "name": "CLASS_DISTRIBUTION"},
            "strategy": {"type": "BALANCE", "target": SEED_CLASS_TARGET},
        },
        {
            "input": {"type": "SCORES", "task": "yolov8_detection", "score": "object_frequency"},
            "strategy": {"type": "WEIGHTS"},
        },
        {
            "input": {"type": "SCORES", "task": "yolov8_detection", "score": "objectness_least_confidence"},
            "strategy": {"type": "WEIGHTS"},
        },
        {
            "input": {"type": "METADATA", "key": "video_name"},
            "strategy": {
                "type": "BALANCE",
                "target": {"passageway1-c0": 0.34, "terrace1-c0": 0.33, "terrace1-c2": 0.33},
            },
        },
    ]
}


def machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}"


def _cut_videos(videos: list[Path], max_frames: int | None, work: Path) -> list[Path]:
    """Re-encode each clip's first max_frames frames (losslessly enough) so both ways see the same frames."""
    if not max_frames:
        return videos
    import av

    out = []
    for video in videos:
        dest = work / f"{video.stem}-{max_frames}.mp4"
        with av.open(str(video)) as src, av.open(str(dest), "w") as dst:
            stream = src.streams.video[0]
            enc = dst.add_stream("libx264", rate=stream.average_rate or 25)
            enc.width, enc.height, enc.pix_fmt = stream.codec_context.width, stream.codec_context.height, "yuv420p"
            enc.options = {"crf": "10"}
            for i, frame in enumerate(src.decode(stream)):
                if i >= max_frames:
                    break
                for packet in enc.encode(frame.reformat(format="yuv420p")):
                    dst.mux(packet)
            for packet in enc.encode():
                dst.mux(packet)
        out.append(dest)
    return out


def tutorial_way(videos: list[Path], weights: str, imgsz: int, out_dir: Path) -> tuple[int, float]:
    """The seed tutorial: predict per video, JSON per frame written in the loop, then embed."""
    from framesift.jobs.model import prepare_ultralytics_env

    prepare_ultralytics_env()
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO(weights)
    torch.set_num_threads(os.cpu_count() or 1)
    frames = 0
    start = time.perf_counter()
    for video in videos:
        for i, result in enumerate(model.predict(str(video), stream=True, conf=0.1, imgsz=imgsz, verbose=False)):
            preds = [
                {
                    "category_id": int(b[5]),
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                    "score": float(b[4]),
                }
                for b in result.boxes.data.tolist()  # type: ignore[union-attr]  # a Results with boxes
            ]
            (out_dir / f"{video.stem}-{i}-{video.suffix[1:]}.json").write_text(
                json.dumps({"file_name": f"{video.stem}-{i}.png", "predictions": preds})
            )
            frames += 1
        for _ in model.embed(str(video), stream=True, imgsz=imgsz, verbose=False):
            pass
    return frames, time.perf_counter() - start


def framesift_way(videos: list[Path], weights: str, imgsz: int, batch: int, work: Path) -> tuple[int, float]:
    from framesift.api.manifest import parse_run
    from framesift.jobs.context import RunContext
    from framesift.jobs.convert import convert
    from framesift.jobs.infer import ModelHolder, infer_video
    from framesift.jobs.progress import video_bar

    video_dir = work / "videos"
    video_dir.mkdir()
    for v in videos:
        (video_dir / v.name).symlink_to(v.resolve())
    doc = {
        "apiVersion": "framesift.dev/v1alpha1",
        "kind": "ActiveLearningRun",
        "metadata": {"name": "bench"},
        "spec": {
            "input": {"uri": str(video_dir)},
            "output": {"uri": str(work / "out")},
            "model": {"weights": weights, "imgsz": imgsz, "batch": batch, "conf": 0.1},
        },
    }
    ctx = RunContext(parse_run(doc, "bench"), work)
    holder = ModelHolder(ctx)
    _ = holder.detector  # load outside the timing, as the tutorial's YOLO() is
    start = time.perf_counter()
    frames = 0
    for index in range(len(ctx.videos)):
        frames += infer_video(ctx, index, holder, lambda k, n: video_bar(k, n, False)).inferred
    convert(ctx)
    return frames, time.perf_counter() - start


def _sample_batches(videos: list[Path], batch: int, limit: int) -> list[list[Any]]:
    """The same mix of frame sizes as the full run: every k-th frame of every video, in batches
    of one video each (a batch holds frames of one size, as in a run)."""
    from framesift.jobs.video import decode

    counts = [_count(v) for v in videos]
    stride = max(1, sum(counts) // limit)
    batches = []
    for video in videos:
        images = [frame.image for frame in decode(video, stride=stride)]
        batches += [images[i : i + batch] for i in range(0, len(images), batch)]
    return batches


def _best_of_three(work: Any) -> float:
    """The fastest of three timed runs: the baseline at its best, so no ratio is flattered."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def object_embedding_cost(
    videos: list[Path], weights: str, imgsz: int, batch: int, conf: float, limit: int = 128
) -> dict[str, Any]:
    """Detection (preprocess, forward, NMS, boxes) with and without the per-box RoI pooling, on
    the same frames in the same run: what object embeddings add to the one pass."""
    from framesift.api.models import ModelSpec
    from framesift.jobs.model import OnePassDetector, load_model

    spec = ModelSpec(weights=weights, imgsz=imgsz, batch=batch, conf=conf)
    detector = OnePassDetector(load_model(spec), spec)
    batches = _sample_batches(videos, batch, limit)
    frames = sum(len(b) for b in batches)
    boxes = sum(len(d.scores) for images in batches for d in detector(images)[0])  # also warms up

    def detect() -> None:
        for images in batches:
            detector(images)

    detector.object_embeddings = False
    plain = _best_of_three(detect)
    detector.object_embeddings = True
    with_objects = _best_of_three(detect)
    return {
        "frames": frames,
        "conf": conf,
        "boxes_per_frame": round(boxes / max(frames, 1), 2),
        "detect_fps": round(frames / plain, 2),
        "detect_with_object_embeddings_fps": round(frames / with_objects, 2),
        "object_embeddings_overhead": round(with_objects / plain - 1.0, 4),
    }


def bare_forward(videos: list[Path], weights: str, imgsz: int, batch: int, limit: int = 256) -> float:
    """Frames/s of the network's forward pass alone, on already decoded and preprocessed frames."""
    from framesift.api.models import ModelSpec
    from framesift.jobs.model import OnePassDetector, load_model

    spec = ModelSpec(weights=weights, imgsz=imgsz, batch=batch)
    detector = OnePassDetector(load_model(spec), spec)
    batches = [detector.preprocess(images) for images in _sample_batches(videos, batch, limit)]
    frames = sum(len(b) for b in batches)
    for tensor in batches:  # warm up every input shape
        detector.forward(tensor)

    def forward_all() -> None:
        for tensor in batches:
            detector.forward(tensor)

    return frames / _best_of_three(forward_all)


def _count(video: Path) -> int:
    from framesift.jobs.video import DecodeLog, decode

    log = DecodeLog()
    for _ in decode(video, stride=10_000_000, log=log):
        pass
    return log.frames


def bench_infer(args: argparse.Namespace) -> dict[str, Any]:
    videos = [Path(v) for v in args.videos] if args.videos else sorted(REPO_SHARED.glob("*.*"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        videos = _cut_videos(videos, args.max_frames, work)
        (work / "tutorial").mkdir()
        a_frames, a_seconds = tutorial_way(videos, args.weights, args.imgsz, work / "tutorial")
        (work / "fs").mkdir()
        b_frames, b_seconds = framesift_way(videos, args.weights, args.imgsz, args.batch, work / "fs")
        bare = bare_forward(videos, args.weights, args.imgsz, args.batch)
        objects = object_embedding_cost(videos, args.weights, args.imgsz, args.batch, args.conf)
    a_fps, b_fps = a_frames / a_seconds, b_frames / b_seconds
    return {
        "videos": [v.name for v in videos],
        "frames": b_frames,
        "weights": args.weights,
        "imgsz": args.imgsz,
        "batch": args.batch,
        "tutorial_fps": round(a_fps, 2),
        "framesift_fps": round(b_fps, 2),
        "speedup": round(b_fps / a_fps, 2),
        "bare_forward_fps": round(bare, 2),
        "framesift_vs_bare": round(b_fps / bare, 3),
        "object_embeddings": objects,
        "machine": machine(),
    }


# ----- select --------------------------------------------------------------------------------


PEER_MAX_FRAMES = 1_000_000  # the fleet target compares 10 M frames with k-center at 1 M


def _select_child(n: int, picks: int, dim: int) -> dict[str, Any]:
    import numpy as np

    from framesift.api.selection_config import SelectionConfig
    from framesift.jobs.selection.data import embedding_dtype
    from framesift.jobs.selection.engine import select
    from framesift.jobs.selection.synthetic import synthetic_data

    config = SelectionConfig.model_validate({"n_samples": picks, **SEED_SELECTION})
    dtype = embedding_dtype(n, dim)
    data = synthetic_data(n, dim=dim, dtype=dtype)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    start = time.perf_counter()
    result = select(data, config)
    seconds = time.perf_counter() - start
    return {
        "n": n,
        "dim": dim,
        "picks": len(result.picks),
        "embeddings": np.dtype(dtype).name,
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
        "rss_after_data_gb": round(rss_data, 2),
    }


def _kcenter_child(n: int, picks: int, dim: int) -> dict[str, Any]:
    """The peer: plain numpy k-center (farthest-point) on the same synthetic embeddings, one
    matrix-vector product per pick, diversity only. What any engine has to beat."""
    import numpy as np

    from framesift.jobs.selection.synthetic import synthetic_data

    emb = synthetic_data(n, dim=dim).embeddings
    assert emb is not None
    start = time.perf_counter()
    nearest = np.full(n, np.inf, np.float32)
    pick = 0
    for _ in range(picks):
        sim = emb @ emb[pick]
        np.minimum(nearest, np.sqrt(np.maximum(2.0 - 2.0 * sim, 0.0)), out=nearest)
        nearest[pick] = -1.0
        pick = int(np.argmax(nearest))
    seconds = time.perf_counter() - start
    return {
        "n": n,
        "dim": dim,
        "picks": picks,
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }


# The seed's five strategies over a fleet: the per-camera balance has one class per camera
# (UNIFORM: SEED_SELECTION's three named clips are not in a synthetic fleet).
FLEET_SELECTION = {
    "strategies": [
        *SEED_SELECTION["strategies"][:4],
        {
            "input": {"type": "METADATA", "key": "video_name"},
            "strategy": {"type": "BALANCE", "distribution": "UNIFORM"},
        },
    ]
}


def _write_results_child(n: int, videos: int, dim: int, folder: str) -> dict[str, Any]:
    from framesift.api.models import Location
    from framesift.jobs.selection.synthetic import write_synthetic_results
    from framesift.jobs.storage import open_storage

    start = time.perf_counter()
    write_synthetic_results(open_storage(Location(uri=folder + "/"), Path(folder)), n, videos, dim=dim)
    size = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
    return {"write_seconds": round(time.perf_counter() - start, 1), "results_bytes": size}


def _results_select_child(n: int, picks: int, videos: int, folder: str) -> dict[str, Any]:
    """What `framesift select --embeddings <output>` does: find every video's results, stream
    them into the engine's matrices, select."""
    import numpy as np

    from framesift.api.models import Location
    from framesift.api.selection_config import SelectionConfig
    from framesift.jobs.selection.engine import select
    from framesift.jobs.selection.sources import from_results, latest_results
    from framesift.jobs.storage import open_storage

    config = SelectionConfig.model_validate({"n_samples": picks, **FLEET_SELECTION})
    start = time.perf_counter()
    handles = latest_results(open_storage(Location(uri=folder + "/"), Path(folder)))
    data = from_results(handles, "yolov8_detection", 1.0, objects=config.uses_object_embeddings)
    load_s = time.perf_counter() - start
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    start = time.perf_counter()
    result = select(data, config)
    seconds = time.perf_counter() - start
    assert data.embeddings is not None
    return {
        "n": len(data),
        "videos": len(handles),
        "picks": len(result.picks),
        "videos_picked": len({p.video for p in result.picks}),
        "embeddings": np.dtype(data.embeddings.dtype).name,
        "load_seconds": round(load_s, 1),
        "seconds": round(seconds, 2),
        "rss_after_load_gb": round(rss_data, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }


def _reference_child(n: int, picks: int, dim: int) -> dict[str, Any]:
    from framesift.api.selection_config import SelectionConfig
    from framesift.jobs.selection.engine import select
    from framesift.jobs.selection.reference import naive_select
    from framesift.jobs.selection.synthetic import synthetic_data

    config = SelectionConfig.model_validate({"n_samples": picks, **SEED_SELECTION})
    data = synthetic_data(n, dim=dim)
    start = time.perf_counter()
    fast = [p.index for p in select(data, config).picks]
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = naive_select(data, config)
    naive_s = time.perf_counter() - start
    return {
        "n": n,
        "picks": picks,
        "identical": fast == naive,
        "engine_seconds": round(fast_s, 3),
        "naive_seconds": round(naive_s, 3),
        "speedup": round(naive_s / fast_s, 1),
    }


def _coverage_radius(emb: Any, picks: list[int]) -> float:
    """The largest distance from any frame to its nearest pick (k-center's objective)."""
    import numpy as np

    chosen = emb[picks].astype(np.float32)
    radius = 0.0
    for start in range(0, len(emb), 16384):
        sim = emb[start : start + 16384].astype(np.float32) @ chosen.T
        nearest = np.sqrt(np.maximum(2.0 - 2.0 * sim.max(axis=1), 0.0))
        radius = max(radius, float(nearest.max()))
    return radius


def _precision_child(n: int, picks: int, dim: int) -> dict[str, Any]:
    """float16 embeddings (what ten million frames are stored as) against float32 on the same
    frames and config: the same picks, or how far apart — coverage radius measured on the float32
    embeddings, picks per video and boxes per class among the picks."""
    import numpy as np

    from framesift.api.selection_config import SelectionConfig
    from framesift.jobs.selection.engine import select
    from framesift.jobs.selection.synthetic import synthetic_data

    config = SelectionConfig.model_validate({"n_samples": picks, **SEED_SELECTION})
    runs = {}
    for dtype in (np.float32, np.float16):
        data = synthetic_data(n, dim=dim, dtype=dtype)
        runs[np.dtype(dtype).name] = [p.index for p in select(data, config).picks]
    full, half = runs["float32"], runs["float16"]
    exact = synthetic_data(n, dim=dim)  # float32 rows, the same frames
    assert exact.embeddings is not None
    preds = exact.predictions["yolov8_detection"]

    def counts(chosen: list[int]) -> tuple[list[int], list[int]]:
        per_video = [int((exact.videos[chosen] == v).sum()) for v in sorted(set(exact.videos))]
        boxes = np.isin(preds.box_frame, chosen)
        per_class = np.bincount(preds.class_index()[boxes], minlength=len(preds.categories))
        return per_video, per_class.tolist()

    # what the class BALANCE aims at: L1 distance of the picks' class-mass shares to its target
    mass = preds.class_distribution(n)
    target = np.array([SEED_CLASS_TARGET[preds.categories[c]] for c in preds.category_ids])

    def balance_gap(chosen: list[int]) -> float:
        shares = mass[:, chosen].sum(axis=1)
        return round(float(np.abs(shares / shares.sum() - target).sum()), 5)

    radius_full, radius_half = _coverage_radius(exact.embeddings, full), _coverage_radius(exact.embeddings, half)
    (videos_full, classes_full), (videos_half, classes_half) = counts(full), counts(half)
    return {
        "n": n,
        "picks": picks,
        "identical_picks": full == half,
        "same_picks_share": round(len(set(full) & set(half)) / max(1, len(full)), 4),
        "coverage_radius_float32": round(radius_full, 5),
        "coverage_radius_float16": round(radius_half, 5),
        "coverage_radius_ratio": round(radius_half / radius_full, 5) if radius_full else 1.0,
        "per_video_float32": videos_full,
        "per_video_float16": videos_half,
        "boxes_per_class_float32": classes_full,
        "boxes_per_class_float16": classes_half,
        "class_share_l1_to_target_float32": balance_gap(full),
        "class_share_l1_to_target_float16": balance_gap(half),
    }


def _child(kind: str, *arguments: int | str) -> dict[str, Any]:
    """One measurement in a fresh process (clean peak memory). Not started from the repo root:
    its operator/ folder would shadow the standard library's `operator` for `python -m`."""
    out = subprocess.run(
        [sys.executable, "-m", "framesift.jobs.bench", kind, *map(str, arguments)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


RESULTS_MARKER = "bench-results.json"  # what a kept --results-dir folder holds


def _from_results(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Stored per-video results (written first, in another process) → loader → engine. With
    --results-dir the results are kept there and reused by a later run with the same shape
    (ten million frames take a while to write)."""
    shape = {"frames": n, "videos": args.from_results, "dim": args.dim}
    with contextlib.ExitStack() as stack:
        root = args.results_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-results-"))
        folder = Path(root) / f"{n}-{args.from_results}-{args.dim}"
        marker = folder / RESULTS_MARKER
        if marker.exists() and json.loads(marker.read_text()).get("shape") == shape:
            written = {**json.loads(marker.read_text())["written"], "reused": True}
        else:
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            written = _child("write-results-child", n, args.from_results, args.dim, str(folder))
            marker.write_text(json.dumps({"shape": shape, "written": written}))
        row = _child("results-select-child", n, args.picks, args.from_results, str(folder))
    return {**row, **written, "source": "stored results (framesift select --embeddings)"}


def bench_select(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for n in args.sizes:
        rows.append(_from_results(n, args) if args.from_results else _child("select-child", n, args.picks, args.dim))
        if args.peer:  # the same data, the same machine, the same run: only the ratio travels
            peer_n = min(n, PEER_MAX_FRAMES)
            peer = _child("kcenter-child", peer_n, args.picks, args.dim)
            rows[-1]["peer_kcenter_frames"] = peer_n
            rows[-1]["peer_kcenter_seconds"] = peer["seconds"]
            rows[-1]["vs_peer"] = round(rows[-1]["seconds"] / max(peer["seconds"], 1e-9), 2)
        print(json.dumps(rows[-1]), file=sys.stderr)
    reference = _child("reference-child", args.reference_n, args.reference_picks, args.dim)
    result = {"runs": rows, "reference": reference, "machine": machine()}
    if args.precision_n:
        result["float16"] = _child("precision-child", args.precision_n, args.picks, args.dim)
    return result


# ----- convert -------------------------------------------------------------------------------


def bench_convert(args: argparse.Namespace) -> dict[str, Any]:
    """The conversion's writes (one JSON per frame) through framesift's storage, against a plain
    sequential boto3 put loop on the same objects, the same server, the same run."""
    import boto3

    from framesift.api.models import Location
    from framesift.jobs.storage import open_storage

    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.endpoint:
            endpoint = args.endpoint
            creds = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in os.environ}
        else:
            from framesift.jobs.local_s3 import start_local_s3

            try:
                server = start_local_s3(Path(tmp))
            except RuntimeError as err:
                message = f"bench convert needs an S3 endpoint (--endpoint URL with AWS_* credentials): {err}"
                raise SystemExit(message) from err
            endpoint = server.endpoint
            creds = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
        proxy = None
        if args.latency_ms:  # a distant endpoint: what concurrent uploads are for
            from urllib.parse import urlparse

            from framesift.jobs.faulty_proxy import FaultyProxy

            up = urlparse(endpoint)
            proxy = FaultyProxy((str(up.hostname), int(up.port or 80)), share=0.0, latency_s=args.latency_ms / 1000)
            endpoint = proxy.endpoint
        try:
            client = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID"),
                aws_secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY"),
            )
            bucket = args.bucket
            if not args.endpoint:
                client.create_bucket(Bucket=bucket)
            doc = {
                "file_name": "",
                "predictions": [{"category_id": 0, "bbox": [10.0, 20.0, 30.5, 40.25], "score": 0.5}],
            }
            items = []
            for i in range(args.frames):
                doc["file_name"] = f"cam/clip-{i:07d}-mp4.png"
                items.append((f".lightly/predictions/task/cam/clip-{i:07d}-mp4.json", json.dumps(doc).encode()))
            location = Location.model_validate(
                {"uri": f"s3://{bucket}/framesift/", "endpointUrl": endpoint, "pathStyle": True}
            )
            store = open_storage(location, credentials=creds)
            start = time.perf_counter()
            store.write_many(items, "application/json", workers=args.concurrency)
            ours = time.perf_counter() - start
            start = time.perf_counter()
            for key, data in items:
                client.put_object(Bucket=bucket, Key=f"baseline/{key}", Body=data, ContentType="application/json")
            baseline = time.perf_counter() - start
            # a rerun: one listing, every object found unchanged by its ETag, nothing written
            start = time.perf_counter()
            existing = {o.key: o for o in store.list(".lightly/predictions/task")}
            unchanged = sum(store.same_content(k, d, existing[k]) for k, d in items if k in existing)
            rerun = time.perf_counter() - start
        finally:
            if proxy is not None:
                proxy.stop()
            if server is not None:
                server.stop()
    return {
        "frames": args.frames,
        "concurrency": args.concurrency,
        "latency_ms": args.latency_ms,
        "objects_per_s": round(args.frames / ours, 1),
        "baseline_objects_per_s": round(args.frames / baseline, 1),
        "speedup": round(baseline / ours, 2),
        "rerun_seconds": round(rerun, 2),
        "rerun_unchanged": unchanged,
        "server": "rclone serve s3 on 127.0.0.1" if server is not None else args.endpoint,
        "machine": machine(),
    }


def main(args: argparse.Namespace) -> int:
    benches = {"infer": bench_infer, "select": bench_select, "convert": bench_convert}
    result = benches[args.bench](args)
    text = json.dumps(result, indent=1)
    print(text)
    if getattr(args, "out", None):
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(f"\n```json\n{text}\n```\n")
    return 0


if __name__ == "__main__":
    kind, numbers, rest = sys.argv[1], [int(a) for a in sys.argv[2:5]], sys.argv[5:]
    children: dict[str, Callable[..., dict[str, Any]]] = {
        "select-child": _select_child,
        "kcenter-child": _kcenter_child,
        "reference-child": _reference_child,
        "precision-child": _precision_child,
        "write-results-child": _write_results_child,
        "results-select-child": _results_select_child,
    }
    print(json.dumps(children[kind](*numbers, *rest)))
