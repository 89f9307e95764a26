"""The reconciler (`operator/runner.py`) against a small in-memory cluster: fast, no API server.

The end-to-end tests run kopf against kmock; these reach every branch of one reconcile in
milliseconds: invalid specs, spec changes, status keys that must be removed, results read at
the end, the Kueue wait.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from framesift.api.vocabulary import Condition, Phase, Reason
from framesift.operator import memory, metrics
from framesift.operator.runner import Reconciler
from tests.helpers import manifest, synthetic_video

NS, NAME, UID = "ml", "cams", "uid-1"


class MemoryCluster(memory.MemoryCluster):
    """The in-memory cluster, with helpers bound to this module's one run."""

    def apply(self, doc: dict[str, Any], generation: int = 1) -> None:  # type: ignore[override]
        super().apply(doc, NS, UID, generation)

    def status(self) -> dict[str, Any]:
        return dict(self.runs[(NS, NAME)].get("status") or {})

    def job(self, stage: str) -> dict[str, Any]:
        return self.objects[("Job", NS, f"{NAME}-{stage}")]

    def finish(self, stage: str, summary: dict[str, Any] | None = None, **status: Any) -> None:
        """The stage's Job completes; its pod leaves `summary` as termination message."""
        self.finish_job(NS, f"{NAME}-{stage}", summary or {"stage": stage, "done": True}, **status)

    def fail(self, stage: str, summary: dict[str, Any], exit_code: int = 2) -> None:
        job = self.job(stage)
        job["status"] = {"conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}
        self.add_pod(f"{NAME}-{stage}", stage, "Failed", json.dumps(summary), exit_code)


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        synthetic_video(folder / name, frames=3, codec="libx264")
    return folder


def run_doc(videos: Path, output: Path, **spec: Any) -> dict[str, Any]:
    selection = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    return manifest(NAME, videos.as_uri() + "/", output.as_uri() + "/", selection=selection, **spec)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == kind)


def failures(stage: str) -> float:
    return metrics.JOB_FAILURES.labels(stage=stage)._value.get()


def test_invalid_spec_fails_with_the_field_and_creates_nothing(videos: Path, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    doc = run_doc(videos, tmp_path / "out")
    doc["spec"]["model"]["conf"] = 7
    cluster.apply(doc)
    before = failures("spec")
    assert Reconciler(cluster, "img").reconcile(NS, NAME) == Phase.FAILED
    status = cluster.status()
    assert status["phase"] == "Failed" and "spec.model.conf" in status["message"]
    assert condition(status, Condition.FAILED)["reason"] == Reason.INVALID_SPEC == "InvalidSpec"
    assert condition(status, Condition.SUCCEEDED)["status"] == "False"
    assert cluster.objects == {} and [e[1] for e in cluster.events] == ["InvalidSpec"]
    assert failures("spec") == before + 1
    assert Reconciler(cluster, "img").reconcile(NS, NAME) == "Failed" and len(cluster.events) == 1  # terminal


def test_a_failed_list_job_fails_the_run_as_input_unavailable(tmp_path: Path) -> None:
    cluster = MemoryCluster()
    cluster.apply(run_doc(tmp_path / "nowhere", tmp_path / "out"))
    reconciler = Reconciler(cluster, "img")
    assert reconciler.reconcile(NS, NAME) == "Pending"
    before = failures("list")
    cluster.fail("list", {"error": "spec.input: no videos under file:///nowhere/ match include=['*']"})
    assert reconciler.reconcile(NS, NAME) == "Failed"
    status = cluster.status()
    assert condition(status, Condition.FAILED)["reason"] == "InputUnavailable"
    assert "no videos under file:///nowhere/" in status["message"]
    assert failures("list") == before + 1


def test_the_list_jobs_count_sizes_the_inference_job(videos: Path, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    cluster.apply(run_doc(videos, tmp_path / "out"))
    reconciler = Reconciler(cluster, "img")
    assert reconciler.reconcile(NS, NAME) == "Pending"
    assert sorted(k[2] for k in cluster.objects) == [f"{NAME}-config", f"{NAME}-list"]
    cluster.finish("list", {"videos": 2, "videoList": "file:///out/.framesift/runs/cams/videos.json"})
    assert reconciler.reconcile(NS, NAME) == "Inferring"
    assert cluster.job("infer")["spec"]["completions"] == 2
    assert cluster.status()["videos"] == {"total": 2, "done": 0, "failed": 0, "failedVideos": []}
    assert [e[1] for e in cluster.events] == ["Pending", "Inferring"]
    reads = list(cluster.pod_reads)
    reconciler.reconcile(NS, NAME)
    assert cluster.pod_reads == reads  # the count is in status now: no more pod reads for it
    assert not hasattr(cluster, "read_secret")  # the reconciler needs no Secret at all


def test_spec_change_is_reported_once_per_generation(videos: Path, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    doc = run_doc(videos, tmp_path / "out")
    cluster.apply(doc)
    reconciler = Reconciler(cluster, "img")
    reconciler.reconcile(NS, NAME)
    cluster.finish("list", {"videos": 2})
    reconciler.reconcile(NS, NAME)
    doc["spec"]["model"]["conf"] = 0.5
    for generation in (2, 2, 2, 3):
        cluster.apply(doc, generation)
        reconciler.reconcile(NS, NAME)
    ignored = [e for e in cluster.events if e[1] == Reason.SPEC_CHANGE_IGNORED]
    assert len(ignored) == 2  # generations 2 and 3, each once
    cond = condition(cluster.status(), Condition.SPEC_CHANGE_IGNORED)
    assert cond["reason"] == "SpecChangedAfterStart" and cond["observedGeneration"] == 3
    assert len([k for k in cluster.objects if k[0] == "Job"]) == 2  # list + infer: the new spec was not acted on


def test_kueue_wait_is_shown_then_removed_from_status(videos: Path, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    cluster.apply(run_doc(videos, tmp_path / "out", resources={"queueName": "team-a"}))
    reconciler = Reconciler(cluster, "img")
    reconciler.reconcile(NS, NAME)
    assert cluster.job("list")["spec"]["suspend"] is True
    cluster.job("list")["spec"]["suspend"] = False
    cluster.finish("list", {"videos": 2})
    reconciler.reconcile(NS, NAME)
    assert cluster.job("infer")["spec"]["suspend"] is True
    assert cluster.status()["message"] == f"Job {NAME}-infer is waiting for admission (suspended, Kueue)"
    cluster.job("infer")["spec"]["suspend"] = False  # Kueue admitted it
    cluster.job("infer")["status"] = {"completedIndexes": "0"}
    cluster.status_patches.clear()
    reconciler.reconcile(NS, NAME)
    assert cluster.status_patches and cluster.status_patches[-1]["message"] is None  # removed, not left stale
    assert "message" not in cluster.status() and cluster.status()["videos"]["done"] == 1


def inferring(videos: Path, tmp_path: Path) -> tuple[MemoryCluster, Reconciler]:
    """A run whose list Job found the two videos: its inference Job exists."""
    cluster = MemoryCluster()
    cluster.apply(run_doc(videos, tmp_path / "out"))
    reconciler = Reconciler(cluster, "img")
    reconciler.reconcile(NS, NAME)
    cluster.finish("list", {"videos": 2})
    reconciler.reconcile(NS, NAME)
    return cluster, reconciler


def test_results_come_from_the_export_pods_summary(videos: Path, tmp_path: Path) -> None:
    cluster, reconciler = inferring(videos, tmp_path)
    cluster.finish("infer", completedIndexes="0-1")
    export = {"reportUri": "file:///r/report.html", "exportUri": "file:///r/export.json"}
    results = {"selected": 3, "perVideoSelected": {"a.mp4": 2, "b.mp4": 1}, "frames": {"total": 6, "corrupt": 1}}
    for stage, phase in (("convert", "Converting"), ("select", "Selecting"), ("export", "Exporting")):
        assert reconciler.reconcile(NS, NAME) == phase
        cluster.finish(stage, {**export, **results} if stage == "export" else None)
    assert reconciler.reconcile(NS, NAME) == "Succeeded"
    status = cluster.status()
    assert status["selected"] == 3 and status["perVideoSelected"] == {"a.mp4": 2, "b.mp4": 1}
    assert status["frames"] == {"total": 6, "corrupt": 1}
    assert status["reportUri"] == export["reportUri"] and status["exportUri"] == export["exportUri"]
    assert condition(status, Condition.SUCCEEDED)["status"] == "True" and status["finishedAt"]
    assert [e[1] for e in cluster.events][-1] == "Succeeded"


def test_a_failed_stage_job_fails_the_run_with_its_reason(videos: Path, tmp_path: Path) -> None:
    cluster, reconciler = inferring(videos, tmp_path)
    cluster.job("infer")["status"] = {"completedIndexes": "0", "failedIndexes": "1"}
    failed = json.dumps({"video": "b.mp4", "status": "failed", "reason": "truncated"})
    cluster.add_pod(f"{NAME}-infer", "infer", "Failed", failed, 3, 1)
    reconciler.reconcile(NS, NAME)
    assert cluster.status()["videos"]["failedVideos"] == [{"name": "b.mp4", "reason": "truncated"}]
    cluster.finish("infer", completedIndexes="0", failedIndexes="1")
    reconciler.reconcile(NS, NAME)
    cluster.fail("convert", {"error": "cannot write file:///out/x: No space left on device"}, exit_code=1)
    before = failures("convert")
    assert reconciler.reconcile(NS, NAME) == "Failed"
    assert condition(cluster.status(), Condition.FAILED)["reason"] == "ConvertFailed"
    assert cluster.status()["message"].endswith("No space left on device")
    assert failures("convert") == before + 1


def test_bench_operator_reconciles_a_fleet_run_with_small_objects() -> None:
    from framesift.operator.bench import bench_operator

    result = bench_operator(5000, failed_every=50, passes=2)
    assert result["phase"] == "Succeeded" and result["failed_videos"] == 100
    assert result["status_failed_videos"] == 100  # counted by the convert Job: chunks hide none
    assert result["status_under_64KiB"] and result["every_object_under_api_limit"]
    assert result["object_bytes"]["ConfigMap fleet-config"] < 4096  # the video list is not in it
    assert result["inference_job_completions"] == 5000
    fleet = bench_operator(25_000, failed_every=100, passes=1)
    assert fleet["inference_job_completions"] == 8334 and fleet["videos_per_index"] == 3
    # 250 bad videos, and 8 OOM-killed chunks of 3 (each holding one of the bad ones)
    assert fleet["status_failed_videos"] == fleet["failed_videos"] == 250 + 8 * 3 - 8


def test_inference_chunks_count_videos_and_the_convert_job_names_the_failed_ones(videos: Path, tmp_path: Path) -> None:
    """resources.infer.videosPerPod: an index infers a chunk; a bad video inside a chunk does not
    fail the index, so the run's failed videos come from the convert Job's summary."""
    cluster = MemoryCluster()
    cluster.apply(
        run_doc(videos, tmp_path / "out", resources={"infer": {"videosPerPod": 2}}, input={"maxFailedVideos": 1})
    )
    reconciler = Reconciler(cluster, "img")
    reconciler.reconcile(NS, NAME)
    cluster.finish("list", {"videos": 5})
    reconciler.reconcile(NS, NAME)
    infer = cluster.job("infer")["spec"]
    assert infer["completions"] == 3 and infer["maxFailedIndexes"] == 3  # chunks of 2, 2 and 1
    cluster.job("infer")["status"] = {"completedIndexes": "0,2"}
    reconciler.reconcile(NS, NAME)
    assert cluster.status()["videos"]["done"] == 3  # 2 + the last chunk's 1
    cluster.finish("infer", {}, completedIndexes="0-2")
    assert reconciler.reconcile(NS, NAME) == "Converting"
    failed = [{"name": "c.mp4", "reason": "no decodable video stream"}]
    cluster.finish("convert", {"predictionFiles": 9, "skipped": False, "failed": 1, "failedVideos": failed})
    assert reconciler.reconcile(NS, NAME) == "Selecting"
    videos_status = cluster.status()["videos"]
    assert videos_status == {"total": 5, "done": 4, "failed": 1, "failedVideos": failed}
    assert any(r == "VideosFailed" and "c.mp4" in m for _, r, m in cluster.events)
    reads = list(cluster.pod_reads)
    reconciler.reconcile(NS, NAME)
    assert f"{NAME}-convert" not in cluster.pod_reads[len(reads) :]  # read once, before select


def test_more_failed_videos_in_chunks_than_allowed_fail_the_run_after_convert(videos: Path, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    cluster.apply(
        run_doc(videos, tmp_path / "out", resources={"infer": {"videosPerPod": 4}}, input={"maxFailedVideos": 0})
    )
    reconciler = Reconciler(cluster, "img")
    reconciler.reconcile(NS, NAME)
    cluster.finish("list", {"videos": 4})
    reconciler.reconcile(NS, NAME)
    cluster.finish("infer", {}, completedIndexes="0")
    reconciler.reconcile(NS, NAME)
    cluster.finish("convert", {"failed": 1, "failedVideos": [{"name": "b.mp4", "reason": "truncated"}]})
    assert reconciler.reconcile(NS, NAME) == "Failed"
    assert condition(cluster.status(), "Failed")["reason"] == Reason.TOO_MANY_VIDEOS_FAILED
    assert ("Job", NS, f"{NAME}-select") not in cluster.objects
