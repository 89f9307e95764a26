"""Export and report end to end over the real clips, against a real S3 server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from framesift.api.models import Location
from framesift.jobs.storage import Storage, open_storage
from framesift.jobs.video import decode, extract_frames
from tests.helpers import manifest, write_manifest

pytestmark = pytest.mark.slow


def framesift(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "framesift"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=900,
    )


@pytest.mark.parametrize("name", ["vtest.avi", "bikes.mp4"])
def test_extracted_frames_equal_a_sequential_decode(real_videos: Path, name: str) -> None:
    path = real_videos / name
    frames = {f.index: f.image for f in decode(path)}
    wanted = sorted({0, len(frames) - 1, *np.random.default_rng(7).choice(len(frames), 30).tolist()})
    got = dict(extract_frames(path, wanted))
    assert sorted(got) == wanted
    assert all(np.array_equal(got[i], frames[i]) for i in wanted)


@pytest.fixture(scope="module")
def s3_run(real_videos: Path, s3_server, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("export")
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    env = s3_server.env()
    os.environ.update(env)  # for the storage objects made in this process
    videos = open_storage(Location(uri=f"s3://{src}/data/", pathStyle=True))
    for name in ("vtest.avi", "bikes.mp4"):
        videos.upload_file(real_videos / name, name)
    selection = {
        "n_samples": 40,
        "strategies": [
            {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
            {
                "input": {"type": "SCORES", "task": "yolov8_detection", "score": "objectness_least_confidence"},
                "strategy": {"type": "WEIGHTS"},
            },
            {
                "input": {"type": "METADATA", "key": "video_name"},
                "strategy": {"type": "BALANCE", "target": {"vtest": 0.5, "bikes": 0.5}},
            },
        ],
    }
    doc = manifest(
        "export",
        f"s3://{src}/data/",
        f"s3://{dst}/lightly/",
        selection=selection,
        input={"pathStyle": True},
        output={"pathStyle": True},
        export={"urlExpiry": "2h"},
    )
    run_file = write_manifest(work / "run.yaml", doc)
    result = framesift("run", str(run_file), "--no-progress", env=env)
    assert result.returncode == 0, result.stderr
    output = open_storage(Location(uri=f"s3://{dst}/lightly/", pathStyle=True))
    return {"run_file": run_file, "env": env, "output": output, "stdout": result.stdout, "work": work}


def test_forty_pngs_pixel_identical_and_fetchable(s3_run: dict, real_videos: Path) -> None:
    output: Storage = s3_run["output"]
    selected = json.loads(output.read_text("runs/export/selected.json"))["selected"]
    assert len(selected) == 40
    per_video = {v: sum(1 for s in selected if s["video"] == v) for v in ("vtest.avi", "bikes.mp4")}
    assert per_video == {"vtest.avi": 20, "bikes.mp4": 20}
    pngs = [o.key for o in output.list("frames")]
    assert sorted(pngs) == sorted(f"frames/{s['fileName']}" for s in selected)
    decoded = {v: {f.index: f.image for f in decode(real_videos / v)} for v in per_video}
    export = json.loads(output.read_text("runs/export/export.json"))
    assert [e["fileName"] for e in export] == [s["fileName"] for s in selected]
    for entry, pick in zip(export, selected, strict=True):
        assert entry["datasourceUrl"] == output.url(f"frames/{pick['fileName']}")
        body = urllib.request.urlopen(entry["readUrl"]).read()
        assert body == output.read_bytes(f"frames/{pick['fileName']}")
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert np.array_equal(image, decoded[pick["video"]][pick["frameIndex"]])
    assert "X-Amz-Expires=7200" in export[0]["readUrl"]


def test_labelstudio_and_coco_are_valid(s3_run: dict) -> None:
    from pycocotools.coco import COCO

    output: Storage = s3_run["output"]
    coco_path = s3_run["work"] / "coco.json"
    coco_path.write_bytes(output.read_bytes("runs/export/coco.json"))
    dataset = COCO(str(coco_path))
    # COCO reserves 0: framesift's ids 0 (person) and 2 (car) are COCO's 1 and 2, mapped back in info
    assert len(dataset.getImgIds()) == 40 and sorted(dataset.getCatIds()) == [1, 2]
    assert [c["name"] for c in dataset.loadCats([1, 2])] == ["person", "car"]
    assert dataset.dataset["info"]["category_mapping"] == {"1": 0, "2": 2}
    anns = dataset.loadAnns(dataset.getAnnIds())
    assert anns and all(a["score"] >= 0 and a["bbox"][2] >= 1 for a in anns)
    results = dataset.loadRes([{k: a[k] for k in ("image_id", "category_id", "bbox", "score")} for a in anns])
    assert len(results.getAnnIds()) == len(anns)

    tasks = json.loads(output.read_text("runs/export/labelstudio.json"))
    assert len(tasks) == 40
    for task in tasks:
        assert task["data"]["image"].startswith("http")
        (prediction,) = task["predictions"]
        assert prediction["model_version"].startswith("yolov8n.yaml@")
        for r in prediction["result"]:
            assert r["type"] == "rectanglelabels" and r["from_name"] == "label" and r["to_name"] == "image"
            v = r["value"]
            assert 0 <= v["x"] <= 100 and 0 <= v["y"] <= 100 and 0 < v["width"] <= 100 and 0 < v["height"] <= 100
            assert v["rectanglelabels"][0] in {"person", "car"} and 0 <= r["score"] <= 1
    config = output.read_text("runs/export/labelstudio.xml")
    assert '<RectangleLabels name="label" toName="image">' in config and 'value="person"' in config


def test_report_pdf_renders_every_page(s3_run: dict, tmp_path: Path) -> None:
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.fail("pdftoppm is missing: apt-get install poppler-utils (.ci/run does)")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(s3_run["output"].read_bytes("runs/export/report.pdf"))
    subprocess.run([pdftoppm, "-r", "30", "-png", str(pdf), str(tmp_path / "page")], check=True, timeout=300)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 1 + 6 + 10  # summary, six figures, 40 picks at four per page
    for page in pages:
        image = cv2.imread(str(page))
        assert image is not None and image.std() > 1  # not blank
    info = subprocess.run(
        ["pdfinfo", "-f", "1", "-l", str(len(pages)), str(pdf)], capture_output=True, text=True, check=True
    ).stdout
    sizes = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Page") and "size" in line]
    assert len(sizes) == len(pages) and all(s == "595.44 x 841.68 pts (A4)" for s in sizes), set(sizes)


def test_report_html_renders_in_a_browser_with_every_image(s3_run: dict, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is missing: apt-get install chromium (.ci/run does)")
    page = tmp_path / "report.html"
    text = s3_run["output"].read_text("runs/export/report.html")
    page.write_text(text)
    for section in (
        "Summary",
        "Selection config",
        "Diversity gained",
        "Videos: share of frames per video_name",
        "Classes: share of predicted boxes per class",
        "Video sampling timeline",
        "Active-learning scores",
        "Embedding map",
        "Diversity: nearest-neighbour distance",
        "What to check",
        "Selected frames, in pick order",
        "Every pick (click a column to sort)",
    ):
        assert f"<h2>{section}" in text
    assert "failed video" not in text and "frames selected</td><td>40" in text
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    assert 'data-images="46"' in dom and 'data-loaded="46"' in dom, dom[:500]  # 6 figures + 40 cards
    assert 'data-cards="40"' in dom
    caption = float(dom.split('data-caption-px="', 1)[1].split('"', 1)[0])
    width = float(dom.split('data-card-image-px="', 1)[1].split('"', 1)[0])
    assert caption >= 12 and width >= 300, (caption, width)  # readable, not a 5-px caption under a thumbnail
    assert dom.count("<tr><td>") >= 40 and 'class="sortable"' in dom


def test_rerun_changes_nothing_and_says_so(s3_run: dict) -> None:
    output: Storage = s3_run["output"]
    before = {o.key: o.etag for o in output.list()}
    result = framesift("run", str(s3_run["run_file"]), "--no-progress", env=s3_run["env"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("cached") == 2 and result.stdout.count("unchanged, skipped") == 3
    after = {o.key: o.etag for o in output.list() if not o.key.startswith(".framesift/runs/export/videos/")}
    assert {k: v for k, v in before.items() if not k.startswith(".framesift/runs/export/videos/")} == after
    assert "report.html" in s3_run["stdout"]
