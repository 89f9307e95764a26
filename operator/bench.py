"""`framesift bench operator --videos N`: the real Reconciler over a synthetic run of N videos on
an in-memory cluster (no model, no API server): seconds per reconcile pass while inference is
under way and at the end, and the size in bytes of the status and of every object the operator
writes, against the API server's limits."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from framesift.api.shards import index_count, videos_of_index, videos_per_index
from framesift.operator.memory import MemoryCluster
from framesift.operator.runner import Reconciler

NAMESPACE, UID = "fleet", "uid-bench"
API_OBJECT_LIMIT = 1_572_864  # the API server's default request size limit (1.5 MiB); etcd's is similar
STATUS_TARGET = 64 * 1024


def _index_ranges(indexes: list[int]) -> str:
    """Kubernetes' interval notation, as the Job controller writes completedIndexes."""
    out: list[str] = []
    start = prev = None
    for i in indexes:
        if start is None:
            start = prev = i
        elif i == prev + 1:  # type: ignore[operator]
            prev = i
        else:
            out.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = i
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(out)


def _timed_passes(reconciler: Reconciler, name: str, passes: int) -> float:
    seconds = []
    for _ in range(passes):
        started = time.perf_counter()
        reconciler.reconcile(NAMESPACE, name)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def bench_operator(videos: int, failed_every: int = 100, passes: int = 5) -> dict[str, Any]:
    cluster = MemoryCluster()
    name = "fleet"
    doc = {
        "apiVersion": "framesift.dev/v1alpha1",
        "kind": "ActiveLearningRun",
        "metadata": {"name": name},
        "spec": {
            "input": {"uri": "s3://cameras/week/", "credentials": {"secretName": "s3"}},
            "output": {"uri": "s3://lightly/week/", "credentials": {"secretName": "s3"}},
            "model": {"weights": "s3://models/yolov8x.pt"},
            "selection": {
                "n_samples": 1000,
                "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}],
            },
        },
    }
    cluster.apply(doc, NAMESPACE, UID)
    reconciler = Reconciler(cluster, "framesift:bench")  # type: ignore[arg-type]
    reconciler.reconcile(NAMESPACE, name)
    cluster.finish_job(NAMESPACE, f"{name}-list", {"videos": videos, "videoList": "s3://lightly/week/..."})
    reconciler.reconcile(NAMESPACE, name)

    # inference half done: chunks of videos per index (the Job stays at <= 10 000 indexes); every
    # `failed_every`-th video is bad (its chunk records it and goes on); every 1000th index was
    # OOM-killed (a pod-level failure: the index fails, its summary is lost)
    per_index = videos_per_index(None, videos)
    indexes = index_count(videos, per_index)
    oom = set(range(999, indexes, 1000))
    bad_videos = [i for i in range(failed_every - 1, videos, failed_every)]
    infer = cluster.objects[("Job", NAMESPACE, f"{name}-infer")]
    half = [i for i in range(indexes // 2) if i not in oom]
    infer["status"] = {"completedIndexes": _index_ranges(half), "failedIndexes": _index_ranges(sorted(oom))}
    for i in sorted(oom):
        cluster.add_pod(f"{name}-infer", "infer", "Failed", "", 137, i)
    during = _timed_passes(reconciler, name, passes)

    # inference finished, then every later stage; the convert Job counts the run's failed videos
    infer["status"] = {
        "completedIndexes": _index_ranges([i for i in range(indexes) if i not in oom]),
        "failedIndexes": _index_ranges(sorted(oom)),
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    transitions = [_timed_passes(reconciler, name, 1)]
    oom_videos = [v for i in sorted(oom) for v in videos_of_index(i, per_index, videos)]
    failed = sorted(set(bad_videos) | set(oom_videos))
    named = [{"name": f"cam{i:05d}/clip.mp4", "reason": "truncated"} for i in failed[:20]]
    summaries = {
        "convert": {"predictionFiles": videos * 200, "failed": len(failed), "failedVideos": named},
        "export": {"selected": 1000, "frames": {"total": videos * 200, "corrupt": 0}, "reportUri": "s3://r"},
    }
    for stage in ("convert", "select", "export"):
        cluster.finish_job(NAMESPACE, f"{name}-{stage}", summaries.get(stage, {"done": True}))
        transitions.append(_timed_passes(reconciler, name, 1))

    run = cluster.runs[(NAMESPACE, name)]
    sizes = {f"{kind} {obj_name}": len(json.dumps(obj)) for (kind, _, obj_name), obj in cluster.objects.items()}
    status_bytes = len(json.dumps(run.get("status") or {}))
    largest = max([status_bytes, *sizes.values()])
    return {
        "videos": videos,
        "failed_videos": len(failed),
        "status_failed_videos": run["status"]["videos"]["failed"],
        "videos_per_index": per_index,
        "phase": run["status"]["phase"],
        "reconcile_seconds_during_inference": round(during, 4),
        "reconcile_seconds_slowest_stage_change": round(max(transitions), 4),
        "status_bytes": status_bytes,
        "status_under_64KiB": status_bytes < STATUS_TARGET,
        "object_bytes": sizes,
        "largest_object_bytes": largest,
        "every_object_under_api_limit": largest < API_OBJECT_LIMIT,
        "inference_job_completions": infer["spec"]["completions"],
    }
