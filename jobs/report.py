"""report.html (one self-contained file) and report.pdf: what was chosen, and why.

Figures are matplotlib (Agg); the HTML inlines them as base64 PNG and the PDF holds the same
figures page by page after a summary page.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import yaml
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from framesift.jobs import report_picks as picks_mod
from framesift.jobs.collect import VideoEntry
from framesift.jobs.context import RunContext
from framesift.jobs.formats.detections import FrameRecord
from framesift.jobs.results import StoredResults
from framesift.jobs.selection.data import SelectionData
from framesift.jobs.selection.engine import strategy_label
from framesift.jobs.selection.scores import SCORE_NAMES
from framesift.jobs.selection.sources import from_results, read_metadata

GRID_LIMIT = 60
MAP_SAMPLE = 20000
INPUT_COLOR, SELECTED_COLOR, RANDOM_COLOR = "#9aa5b1", "#d9480f", "#1c7ed6"


# ----- pure summaries --------------------------------------------------------------------------


def shares(values: list[str]) -> dict[str, float]:
    counts = Counter(values)
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in sorted(counts.items())}


def nearest_neighbour_distances(emb: np.ndarray) -> np.ndarray:
    """Each row's distance to its nearest other row (unit vectors), in blocks."""
    out = np.empty(len(emb))
    for start in range(0, len(emb), 2048):
        block = emb[start : start + 2048] @ emb.T
        rows = np.arange(start, min(len(emb), start + 2048))
        block[rows - start, rows] = -np.inf
        out[rows] = np.sqrt(np.maximum(2.0 - 2.0 * block.max(axis=1), 0.0))
    return out


def pca_2d(emb: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    centre = emb[fit_rows].mean(axis=0)
    _, _, vt = np.linalg.svd(emb[fit_rows] - centre, full_matrices=False)
    return (emb - centre) @ vt[:2].T


def nn_stats(data: SelectionData, picked: np.ndarray, seed: int = 0) -> dict[str, dict[str, float]]:
    """Nearest-neighbour distance within: the input (a sample), the selection, a random subset
    of the selection's size. Larger within-set distances = more diverse."""
    assert data.embeddings is not None
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(~data.corrupt)
    sample = rng.choice(candidates, min(len(candidates), 5000), replace=False)
    random = rng.choice(candidates, min(len(candidates), len(picked)), replace=False)
    out = {}
    for name, rows in (("input", sample), ("selection", picked), ("random", random)):
        if len(rows) < 2:
            continue
        d = nearest_neighbour_distances(data.embeddings[rows])
        out[name] = {"frames": len(rows), "mean": float(d.mean()), "median": float(np.median(d)), "min": float(d.min())}
    return out


# ----- figures ----------------------------------------------------------------------------------


def _bars(ax: Any, left: dict[str, float], right: dict[str, float], xlabel: str) -> None:
    keys = sorted(set(left) | set(right))
    x = np.arange(len(keys))
    ax.bar(x - 0.2, [left.get(k, 0) for k in keys], 0.4, label="input", color=INPUT_COLOR)
    ax.bar(x + 0.2, [right.get(k, 0) for k in keys], 0.4, label="selection", color=SELECTED_COLOR)
    ax.set_xticks(x, keys, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("share")
    ax.set_xlabel(xlabel)
    ax.legend()


def fig_distribution(input_shares: dict[str, float], selected_shares: dict[str, float], xlabel: str) -> Figure:
    """Shares per value, input vs selection (the section heading is the title: none inside)."""
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    _bars(ax, input_shares, selected_shares, xlabel)
    return fig


def fig_timeline(frames_per_video: dict[str, int], fps: dict[str, float], picks: list[FrameRecord]) -> Figure:
    videos = sorted(frames_per_video)
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(videos) + 1.2), layout="constrained")
    for row, video in enumerate(videos):
        rate = fps.get(video) or 1.0
        ax.hlines(row, 0, frames_per_video[video] / rate, color=INPUT_COLOR, linewidth=6)
        ticks = [p.frame_index / rate for p in picks if p.video == video]
        ax.vlines(ticks, row - 0.3, row + 0.3, color=SELECTED_COLOR, linewidth=1.5)
    ax.set_yticks(range(len(videos)), videos, fontsize=8)
    ax.set_ylabel("video")
    ax.set_xlabel("time in the video (seconds)")
    return fig


def fig_scores(data: SelectionData, task: str, picked: np.ndarray) -> Figure:
    scores = data.predictions[task].scores(len(data))
    fig, axes = plt.subplots(1, len(SCORE_NAMES), figsize=(14, 3), layout="constrained")
    for ax, name in zip(axes, SCORE_NAMES, strict=True):
        values = scores[name]
        lo, hi = float(values.min()), float(values.max())
        if hi - lo < 1e-9:  # all equal: a narrow range around the value
            lo, hi = lo - 0.05, hi + 0.05
        bins = np.linspace(lo, hi, 21)  # the values' own range (object_frequency lives in [0.9, 1])
        ax.hist(values, bins=bins, density=True, alpha=0.6, color=INPUT_COLOR, label="input")
        ax.hist(values[picked], bins=bins, density=True, alpha=0.6, color=SELECTED_COLOR, label="selection")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("score", fontsize=8)
        ax.set_ylabel("density", fontsize=8)
    axes[0].legend(fontsize=7)
    return fig


def fig_embedding_map(data: SelectionData, picked: np.ndarray, seed: int = 0) -> Figure:
    assert data.embeddings is not None
    rng = np.random.default_rng(seed)
    rows = np.arange(len(data))
    sample = rows if len(rows) <= MAP_SAMPLE else np.sort(rng.choice(rows, MAP_SAMPLE, replace=False))
    points = pca_2d(data.embeddings, sample)
    fig, ax = plt.subplots(figsize=(7, 6), layout="constrained")
    ax.scatter(points[sample, 0], points[sample, 1], s=4, color=INPUT_COLOR, alpha=0.5, label="input")
    ax.scatter(points[picked, 0], points[picked, 1], s=18, color=SELECTED_COLOR, label="selection")
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    ax.legend()
    return fig


def fig_nn(stats: dict[str, dict[str, float]]) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    names = list(stats)
    colors = {"input": INPUT_COLOR, "selection": SELECTED_COLOR, "random": RANDOM_COLOR}
    ax.bar(names, [stats[n]["mean"] for n in names], color=[colors[n] for n in names])
    ax.set_xlabel("set of frames")
    ax.set_ylabel("mean distance to nearest neighbour")
    return fig


# ----- assembly ---------------------------------------------------------------------------------


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _rules_text(ctx: RunContext) -> str:
    """Which config scored the picks: framesift's recommended one, or the run's own, with the
    framesift opt-ins it uses (a config without them means what LightlyOne documents)."""
    config = ctx.run.spec.selection
    if config is None:
        return "none"
    if config.is_recommended():
        return "framesift's recommended config (docs/selection.md, examples/recommended_selection_config.json)"
    opt_ins = config.framesift_opt_ins()
    return "the run's own config" + (
        f", with framesift's opt-ins {', '.join(opt_ins)}" if opt_ins else " (LightlyOne's meaning)"
    )


def _corrupt_text(data: SelectionData) -> str:
    reasons = "; ".join(f"{reason}: {count}" for reason, count in data.corrupt_reasons.items() if count)
    return f"{int(data.corrupt.sum())}" + (f" ({reasons})" if reasons else "")


def summary_rows(
    ctx: RunContext,
    entries: list[VideoEntry],
    data: SelectionData,
    selection: dict[str, Any],
    timings: dict[str, float],
) -> list[list[Any]]:
    failed = [e for e in entries if not e.ok]
    rows: list[list[Any]] = [
        ["run", ctx.name],
        ["input", ctx.input.uri],
        ["output", ctx.output.uri],
        ["videos", f"{len(entries)} ({len(entries) - len(failed)} ok, {len(failed)} failed)"],
        ["frames inferred", len(data)],
        ["corrupt frames", _corrupt_text(data)],
        ["candidates", selection["candidates"]],
        ["frames selected", len(selection["selected"])],
        ["stopped because", selection["stoppedBecause"]],
        ["selection rules", _rules_text(ctx)],
        ["filtered", ", ".join(f"{k}: {v}" for k, v in selection["filtered"].items())],
    ]
    rows += [[f"failed video {e.video.key}", e.reason] for e in failed]
    rows += [[f"stage {name}", f"{seconds:.1f} s"] for name, seconds in timings.items()]
    return rows


def write_report(
    ctx: RunContext,
    entries: list[VideoEntry],
    results: list[StoredResults],
    selection_doc: dict[str, Any],
    records: list[FrameRecord],
    categories: dict[int, str],
    timings: dict[str, float],
) -> dict[str, str]:
    import cv2

    spec = ctx.run.spec
    selection = selection_doc["selection"]
    schema, per_video = read_metadata(ctx.output)
    data = from_results(
        results,
        spec.model.task,
        spec.quality.corruption_threshold,
        schema,
        per_video,
        spec.output.frame_format,
        objects=False,
    )
    row_of = data.rows_of(r.file_name for r in records)
    picked = np.array([row_of[r.file_name] for r in records], np.int64)
    passing = np.flatnonzero(~data.corrupt)

    config_yaml = yaml.safe_dump(
        spec.selection.model_dump(mode="json", exclude_none=True) if spec.selection else {}, sort_keys=False
    )
    figures: list[tuple[str, Figure]] = []
    video_names = data.metadata["video_name"].values
    figures.append(
        (
            "Videos: share of frames per video_name, input vs selection",
            fig_distribution(
                shares([str(v) for v in video_names[passing]]),
                shares([str(v) for v in video_names[picked]]),
                "video_name",
            ),
        )
    )
    preds = data.predictions[spec.model.task]
    class_of_box = [categories.get(int(c), str(c)) for c in preds.box_class]
    picked_set = set(picked.tolist())
    figures.append(
        (
            "Classes: share of predicted boxes per class, input vs selection",
            fig_distribution(
                shares(class_of_box),
                shares([n for n, f in zip(class_of_box, preds.box_frame, strict=True) if int(f) in picked_set]),
                "predicted class",
            ),
        )
    )
    frames_per_video = {r.video: r.n_frames for r in results}
    fps = {r.video: float(r.manifest.get("fps") or 0) for r in results}
    figures.append(
        ("Video sampling timeline: the selected frames as ticks", fig_timeline(frames_per_video, fps, records))
    )
    figures.append(("Active-learning scores, input vs selection (density)", fig_scores(data, spec.model.task, picked)))
    figures.append(("Embedding map: frame embeddings, PCA to 2-D", fig_embedding_map(data, picked)))
    stats = nn_stats(data, picked)
    figures.append(("Diversity: nearest-neighbour distance within each set", fig_nn(stats)))
    images: dict[str, np.ndarray] = {}
    thumbnails: dict[str, bytes] = {}
    for rec in records[:GRID_LIMIT]:
        raw = np.frombuffer(ctx.output.read_bytes(f"frames/{rec.file_name}"), np.uint8)
        decoded = cv2.imdecode(raw, cv2.IMREAD_COLOR)
        if decoded is None:  # an unreadable PNG shows as an empty card
            continue
        images[rec.file_name] = decoded
        scale = min(1.0, picks_mod.CARD_WIDTH * 2 / decoded.shape[1])  # 2× the card width: sharp on HiDPI
        small = cv2.resize(decoded, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else decoded
        thumbnails[rec.file_name] = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    strengths = {
        strategy_label(i, entry): float(getattr(entry.strategy, "strength", 1.0))
        for i, entry in enumerate(spec.selection.strategies if spec.selection else [])
    }
    rate = {r.video: float(r.manifest.get("fps") or 0) or 1.0 for r in results}
    facts = picks_mod.pick_facts(
        records,
        data.embeddings[picked] if data.embeddings is not None else np.zeros((len(picked), 0)),
        np.array([r.frame_index / rate.get(r.video, 1.0) for r in records]),
        data.metadata["lightly.sharpness"].values[picked],
        data.metadata["lightly.brightness"].values[picked],
        strengths,
    )
    gaps = picks_mod.long_gaps(records, frames_per_video, fps)
    colors = picks_mod.class_colors(categories)

    rows = summary_rows(ctx, entries, data, selection, timings)
    nn_rows = [
        [name, s["frames"], f"{s['mean']:.4f}", f"{s['median']:.4f}", f"{s['min']:.4f}"] for name, s in stats.items()
    ]
    sections = [
        "<h2>Summary</h2>" + _table(rows, ["", ""]),
        f"<h2>Selection config</h2><pre>{html.escape(config_yaml)}</pre>",
        "<h2>Diversity gained</h2>" + _table(nn_rows, ["set", "frames", "mean NN distance", "median", "min"]),
    ]
    sections.append("<h2>What to check</h2>" + picks_mod.checks_html(facts, records, gaps))
    encoded = [(title, _png(fig)) for title, fig in figures]
    for title, png in encoded:
        sections.append(
            f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" src="data:image/png;base64,{png}">'
        )
    shown = [(r, f) for r, f in zip(records, facts, strict=True) if r.file_name in thumbnails]
    more = (
        f" (the first {len(shown)} of {len(records)}; every pick is in the table below)"
        if len(shown) < len(records)
        else ""
    )
    sections.append(
        f"<h2>Selected frames, in pick order{more}</h2>"
        + picks_mod.legend_html(categories, colors, any(r.novel_objects for r in records))
        + '<div class="cards">'
        + "".join(picks_mod.card_html(r, f, thumbnails[r.file_name], categories, colors) for r, f in shown)
        + "</div>"
    )
    sections.append("<h2>Every pick (click a column to sort)</h2>" + picks_mod.table_html(records, facts))
    page = _HTML.format(
        title=html.escape(f"framesift report: {ctx.name}"),
        body="\n".join(sections),
        style=picks_mod.STYLE,
        script=picks_mod.SORT_SCRIPT,
    )

    pdf = io.BytesIO()
    with PdfPages(pdf) as pages:
        pages.savefig(_summary_page(ctx.name, [*rows, ["selection config", config_yaml]], nn_rows, facts, gaps))
        for title, png in encoded:
            page_fig = picks_mod.a4_page(title, base64.b64decode(png))
            pages.savefig(page_fig)
            plt.close(page_fig)
        shown_records = [r for r, _ in shown]
        for page_fig in picks_mod.pdf_gallery_pages(shown_records, [f for _, f in shown], images, categories, colors):
            pages.savefig(page_fig)
            plt.close(page_fig)
    for _, fig in figures:
        plt.close(fig)
    files = {
        "reportHtml": ctx.person_key("report.html"),
        "reportPdf": ctx.person_key("report.pdf"),
        "reportData": ctx.person_key("report.json"),
    }
    ctx.output.write_text(files["reportHtml"], page, "text/html")
    ctx.output.write_bytes(files["reportPdf"], pdf.getvalue(), "application/pdf")
    ctx.output.write_text(
        files["reportData"],
        json.dumps({"summary": dict((str(r[0]), str(r[1])) for r in rows), "nearestNeighbour": stats}, indent=1),
    )
    return files


def _summary_page(
    name: str,
    rows: list[list[Any]],
    nn_rows: list[list[Any]],
    facts: list[picks_mod.PickFacts],
    gaps: list[str],
) -> Figure:
    fig = plt.figure(figsize=picks_mod.A4)
    lines = [f"framesift report: {name}", ""]
    for key, value in rows:
        lines += [f"{key}: {line}" if i == 0 else f"    {line}" for i, line in enumerate(str(value).splitlines())]
    lines += ["", "nearest-neighbour distance (set, frames, mean, median, min):"]
    lines += ["    " + "  ".join(str(c) for c in r) for r in nn_rows]
    dupes = sum(f.near_duplicate for f in facts)
    blank = sum(f.blank for f in facts)
    lines += ["", "what to check:", f"    near-duplicate picks: {dupes}", f"    nearly blank picks: {blank}"]
    lines += [f"    no pick: {gap}" for gap in gaps] or ["    no long stretch without a pick"]
    fig.text(0.05, 0.97, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=7)
    return fig


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
{style}
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #212529; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #dee2e6; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }}
img {{ max-width: 100%; border: 1px solid #dee2e6; }}
pre {{ background: #f8f9fa; padding: 1em; }}
</style></head>
<body><h1>{title}</h1>
{body}
<script>
{script}
// marks how many figures decoded, for people and for headless checks of the report
window.addEventListener("load", () => {{
  const images = Array.from(document.images);
  document.body.dataset.images = images.length;
  document.body.dataset.loaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  const cards = document.querySelectorAll("figure.pick");
  document.body.dataset.cards = cards.length;
  if (cards.length) {{
    document.body.dataset.captionPx = parseFloat(getComputedStyle(cards[0].querySelector("figcaption")).fontSize);
    document.body.dataset.cardImagePx = cards[0].querySelector("img").clientWidth;
  }}
}});
</script>
</body></html>
"""
