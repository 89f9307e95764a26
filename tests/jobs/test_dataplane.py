"""The data plane end to end: real clips → one-pass inference → LightlyOne layout, locally and
against a real S3 server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from framesift.api.models import Location
from framesift.jobs.context import load_context
from framesift.jobs.formats import lightly
from framesift.jobs.pipeline import run_local
from framesift.jobs.results import read_pointer, read_results
from framesift.jobs.storage import open_storage
from tests.helpers import manifest, synthetic_video, write_manifest

FRAMESIFT = [sys.executable, "-m", "framesift"]


def framesift(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [str(Path(sys.executable).parent / "framesift"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


@pytest.fixture(scope="module")
def local_run(real_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("local")
    run_file = write_manifest(work / "run.yaml", manifest("clips", str(real_videos), "out/"))
    result = framesift("run", str(run_file), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "vtest.avi" in result.stdout and "1045 prediction files" in result.stdout
    return work


def test_one_prediction_file_per_frame_named_by_decode_index(local_run: Path) -> None:
    preds = local_run / "out" / ".lightly" / "predictions" / "yolov8_detection"
    vtest = sorted(p.name for p in preds.glob("vtest-*.json"))
    bikes = sorted(p.name for p in preds.glob("bikes-*.json"))
    assert vtest == [f"vtest-{i:03d}-avi.json" for i in range(795)]
    assert bikes == [f"bikes-{i:03d}-mp4.json" for i in range(250)]
    schema = json.loads((preds / "schema.json").read_text())
    assert schema == {
        "task_type": "object-detection",
        "categories": [{"id": 0, "name": "person"}, {"id": 2, "name": "car"}],
    }
    lightly.check_prediction_schema(schema)
    boxes = 0
    for path in preds.glob("*-*-*.json"):
        doc = json.loads(path.read_text())
        assert doc["file_name"] == path.name[: -len(".json")] + ".png"
        lightly.check_prediction_file(doc, {0, 2})
        boxes += len(doc["predictions"])
    assert boxes > 0  # conf 1e-4 makes even random weights give boxes: the box path is exercised
    assert json.loads((local_run / "out/.lightly/predictions/tasks.json").read_text()) == ["yolov8_detection"]


def test_metadata_files(local_run: Path) -> None:
    meta = local_run / "out" / ".lightly" / "metadata"
    schema = json.loads((meta / "schema.json").read_text())
    assert schema == [
        {"name": "video_name", "path": "video_name", "defaultValue": "", "valueDataType": "CATEGORICAL_STRING"}
    ]
    assert json.loads((meta / "vtest.json").read_text()) == {
        "file_name": "vtest.avi",
        "type": "video",
        "metadata": {"video_name": "vtest"},
    }
    assert json.loads((meta / "bikes.json").read_text())["metadata"] == {"video_name": "bikes"}


def test_results_are_columnar_with_one_pass_embeddings(local_run: Path) -> None:
    ctx = load_context(local_run / "run.yaml")
    pointer = read_pointer(ctx.output, "clips", "vtest.avi")
    assert pointer is not None and pointer["status"] == "ok"
    res = read_results(ctx.output, pointer["cacheKey"])
    assert res.n_frames == 795 and res.frame_index.tolist() == list(range(795))
    assert res.embeddings.shape == (795, 448) and res.embeddings.dtype.name == "float32"
    assert (res.uniform_row_ratio <= 0.1).all() and (res.sharpness > 0).all()
    assert set(res.det_class.tolist()) <= {0, 2}
    assert all(p is not None and abs(float(p.sum()) - 1) < 1e-3 for p in res.det_probs[:50])


def test_second_run_skips_inference(local_run: Path) -> None:
    result = framesift("run", str(local_run / "run.yaml"), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("cached") == 2
    assert "unchanged, skipped" in result.stdout


def test_s3_run_writes_the_same_objects(local_run: Path, real_videos: Path, s3_env, tmp_path: Path) -> None:
    src, dst = s3_env.make_bucket(), s3_env.make_bucket()
    videos = open_storage(Location(uri=f"s3://{src}/pedestrians_input/data/", pathStyle=True))
    for name in ("vtest.avi", "bikes.mp4"):
        videos.upload_file(real_videos / name, name)
    doc = manifest(
        "clips",
        f"s3://{src}/pedestrians_input/data/",
        f"s3://{dst}/pedestrians_lightly/",
        input={"pathStyle": True, "credentials": {"secretName": "s3-credentials"}},
        output={"pathStyle": True, "credentials": {"secretName": "s3-credentials"}},
    )
    ctx = load_context(write_manifest(tmp_path / "run.yaml", doc))
    summary = run_local(ctx, show_progress=False)
    assert [v.status for v in summary.videos] == ["ok", "ok"]
    remote = {o.key: o for o in ctx.output.list(".lightly")}
    local_root = local_run / "out"
    local = {p.relative_to(local_root).as_posix() for p in (local_root / ".lightly").rglob("*.json")}
    assert set(remote) == local
    for key in (".lightly/predictions/yolov8_detection/vtest-123-avi.json", ".lightly/metadata/bikes.json"):
        assert json.loads(ctx.output.read_text(key)) == json.loads((local_root / key).read_text())
    again = run_local(load_context(tmp_path / "run.yaml"), show_progress=False)
    assert [v.status for v in again.videos] == ["cached", "cached"] and again.convert and again.convert.skipped


def test_bad_videos_are_listed_and_the_others_complete(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    synthetic_video(videos / "a_good.mp4", frames=30, codec="libx264")
    (videos / "b_garbage.avi").write_bytes(b"RIFF" + b"\x00" * 4000)
    good = synthetic_video(tmp_path / "x.mp4", frames=30, codec="libx264")
    (videos / "c_truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    run_file = write_manifest(tmp_path / "run.yaml", manifest("bad", "videos/", "out/"))
    result = framesift("run", str(run_file), "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith(("a_", "b_", "c_"))}
    assert " ok " in lines["a_good.mp4"]
    assert " failed " in lines["b_garbage.avi"] and " failed " in lines["c_truncated.mp4"]
    assert "2 video(s) failed" in result.stdout
    assert "[Errno" not in result.stdout + result.stderr  # said in words, once; the raw error stays in the record
    failed = json.loads((tmp_path / "out" / "runs" / "bad" / "failed-videos.json").read_text())
    assert [f["name"] for f in failed] == ["b_garbage.avi", "c_truncated.mp4"] and all(f["reason"] for f in failed)
    preds = list((tmp_path / "out/.lightly/predictions/yolov8_detection").glob("a_good-*.json"))
    assert len(preds) == 30
    job = framesift("job", "infer", "--run", str(run_file), "--index", "1", "--no-progress")
    assert job.returncode == 3, job.stderr  # bad input: the Job's podFailurePolicy fails this index


def test_frame_stride_keeps_names_padded_to_all_frames(tmp_path: Path) -> None:
    synthetic_video(tmp_path / "clip.mp4", frames=120, codec="libx264")
    doc = manifest("stride", str(tmp_path), "out/", model={"frameStride": 25})
    summary = run_local(load_context(write_manifest(tmp_path / "run.yaml", doc)), show_progress=False)
    assert summary.videos[0].frames == 120 and summary.videos[0].inferred == 5
    names = sorted(p.name for p in (tmp_path / "out/.lightly/predictions/yolov8_detection").glob("clip-*"))
    assert names == [f"clip-{i:03d}-mp4.json" for i in (0, 25, 50, 75, 100)]


def test_identical_frames_share_a_pixel_hash(tmp_path: Path) -> None:
    synthetic_video(tmp_path / "still.avi", frames=20, still_from=10)
    doc = manifest("still", str(tmp_path), "out/")
    ctx = load_context(write_manifest(tmp_path / "run.yaml", doc))
    run_local(ctx, show_progress=False)
    pointer = read_pointer(ctx.output, "still", "still.avi")
    assert pointer is not None
    hashes = read_results(ctx.output, pointer["cacheKey"]).pixel_hash.tolist()
    assert len(set(hashes[:10])) == 10 and len(set(hashes[11:])) == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"input": {"uri": "empty/"}}, "spec.input: no videos under"),
        ({"model": {"weights": "models/missing.pt"}}, "model.weights 'models/missing.pt': no such file"),
        ({"output": {"uri": "blocker/out/"}}, "is not writable"),
        (
            {"selector": {"engine": "lightlyone", "token": {"name": "lightly-token"}}},
            "engine lightlyone reads and writes buckets (LightlyOne datasources): use s3://bucket/prefix/",
        ),
        (
            {
                "selector": {"engine": "lightlyone", "token": {"name": "lightly-token"}},
                "input": {"uri": "s3://videos/in/"},
                "output": {"uri": "s3://lightly/out/"},
            },
            "spec.selector.engine lightlyone: set $LIGHTLY_TOKEN",
        ),
    ],
)
def test_bad_input_fails_before_inference(tmp_path: Path, change: dict, expected: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "blocker").write_text("a file, not a folder")
    synthetic_video(tmp_path / "clip.avi", frames=5)
    selection = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    doc = manifest("bad", str(tmp_path), str(tmp_path / "out"), selection=selection)
    for key, value in change.items():
        doc["spec"].setdefault(key, {}).update(value)
    run_file = str(write_manifest(tmp_path / "run.yaml", doc))
    result = framesift("run", run_file, "--no-progress", env={"LIGHTLY_TOKEN": ""})
    assert result.returncode in (1, 2)
    assert expected in result.stderr
    assert not (tmp_path / "out" / ".framesift" / "videos").exists()


def test_manifest_errors_exit_2_naming_the_field(tmp_path: Path) -> None:
    doc = manifest("typo", str(tmp_path), "out/")
    doc["spec"]["model"]["imgsize"] = 320
    result = framesift("run", str(write_manifest(tmp_path / "run.yaml", doc)))
    assert result.returncode == 2
    assert "spec.model.imgsize: unknown field; did you mean 'imgsz'?" in result.stderr


def test_a_convert_rerun_writes_only_what_differs(tmp_path: Path) -> None:
    from framesift.jobs.convert import convert

    synthetic_video(tmp_path / "clip.mp4", frames=20, codec="libx264")
    ctx = load_context(write_manifest(tmp_path / "run.yaml", manifest("idem", str(tmp_path), "out/")))
    run_local(ctx, show_progress=False)
    folder = tmp_path / "out" / ".lightly" / "predictions" / "yolov8_detection"
    files = sorted(folder.glob("clip-*.json"))
    assert len(files) == 20
    damaged = files[3]
    damaged.write_text("{}")  # a crash left one object with other content
    before = {f.name: f.stat().st_mtime_ns for f in files}
    (tmp_path / "out" / ".framesift" / "runs" / "idem" / "convert.json").unlink()  # the stage must run again
    outcome = convert(load_context(tmp_path / "run.yaml", stored_list=True))
    assert outcome.prediction_files == 20 and not outcome.skipped
    after = {f.name: f.stat().st_mtime_ns for f in files}
    assert [name for name in before if before[name] != after[name]] == [damaged.name]  # only it was rewritten
    assert json.loads(damaged.read_text())["file_name"] == damaged.name[: -len(".json")] + ".png"


def test_bench_convert_measures_against_a_sequential_put_loop() -> None:
    result = framesift("bench", "convert", "--frames", "300", "--latency-ms", "5")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["frames"] == 300 and doc["objects_per_s"] > 0 and doc["baseline_objects_per_s"] > 0
    assert doc["speedup"] > 0 and doc["rerun_unchanged"] == 300 and doc["latency_ms"] == 5  # no timed assertion
