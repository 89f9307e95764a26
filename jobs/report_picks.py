"""The report's picks: one card per selected frame, a sortable table of every pick, and what a
labelling lead should check (near-duplicate picks, long stretches without a pick, nearly blank
frames). HTML for the browser; A4 pages of a few frames each for the PDF."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from framesift.jobs.formats.detections import FrameRecord

CARD_WIDTH = 480  # px of the thumbnail in a card: boxes and labels readable at 1280 px
NOVEL_COLOR = "#e64980"
PALETTE = ["#1c7ed6", "#f08c00", "#2f9e44", "#ae3ec9", "#e03131", "#0c8599", "#5c940d", "#d6336c"]
NEAR_DUPLICATE = 0.05  # embedding distance below which two picks are flagged as near-duplicates
BLANK_SHARPNESS = 5.0  # Laplacian variance below this: a nearly blank frame
LONG_GAP_SHARE = 0.25  # a stretch without a pick longer than this share of the video is flagged


def class_colors(categories: dict[int, str]) -> dict[int, str]:
    return {cid: PALETTE[i % len(PALETTE)] for i, cid in enumerate(sorted(categories))}


@dataclass
class PickFacts:
    """What the report says about one pick beyond its scores."""

    rank: int
    time_s: float
    product: float
    closest_pick: str
    closest_distance: float
    sharpness: float
    brightness: float

    @property
    def near_duplicate(self) -> bool:
        return self.closest_distance < NEAR_DUPLICATE

    @property
    def blank(self) -> bool:
        return self.sharpness < BLANK_SHARPNESS


def pick_facts(
    records: list[FrameRecord],
    embeddings: np.ndarray,
    times: np.ndarray,
    sharpness: np.ndarray,
    brightness: np.ndarray,
    strengths: dict[str, float],
) -> list[PickFacts]:
    """Per pick: its time, the product of its scores, its closest other pick (unit embeddings)."""
    out = []
    sims = embeddings @ embeddings.T if len(embeddings) else np.zeros((0, 0))
    for i, rec in enumerate(records):
        if len(records) > 1:
            row = sims[i].copy()
            row[i] = -np.inf
            j = int(np.argmax(row))
            closest, distance = records[j].file_name, float(np.sqrt(max(0.0, 2.0 - 2.0 * row[j])))
        else:
            closest, distance = "", math.inf
        product = 1.0
        for label, g in rec.scores.items():
            product *= max(g, 1e-12) ** strengths.get(label, 1.0)
        out.append(
            PickFacts(i + 1, float(times[i]), product, closest, distance, float(sharpness[i]), float(brightness[i]))
        )
    return out


def long_gaps(records: list[FrameRecord], frames_per_video: dict[str, int], fps: dict[str, float]) -> list[str]:
    """Stretches of a video with no pick longer than LONG_GAP_SHARE of it, in words."""
    notes = []
    for video, total in sorted(frames_per_video.items()):
        picks = sorted(r.frame_index for r in records if r.video == video)
        if total < 2:
            continue
        edges = [-1, *picks, total]
        gap, start = max((edges[k + 1] - edges[k] - 1, edges[k] + 1) for k in range(len(edges) - 1))
        if gap > LONG_GAP_SHARE * total:
            rate = fps.get(video) or 0
            seconds = f" ({gap / rate:.1f} s)" if rate else ""
            notes.append(f"{video}: frames {start}–{start + gap - 1} ({gap} frames{seconds}) have no pick")
    return notes


def checks_html(facts: list[PickFacts], records: list[FrameRecord], gaps: list[str]) -> str:
    items = []
    dupes = [(f, r) for f, r in zip(facts, records, strict=True) if f.near_duplicate]
    if dupes:
        names = ", ".join(f"{r.file_name} ≈ {f.closest_pick} ({f.closest_distance:.3f})" for f, r in dupes[:10])
        items.append(
            f"<li><b>Near-duplicate picks</b> (embedding distance < {NEAR_DUPLICATE}): {html.escape(names)}</li>"
        )
    else:
        items.append(f"<li>No near-duplicate picks (every pick is ≥ {NEAR_DUPLICATE} from the others).</li>")
    if gaps:
        items.append("<li><b>Long stretches without a pick</b>: " + html.escape("; ".join(gaps)) + "</li>")
    else:
        items.append(f"<li>No stretch longer than {LONG_GAP_SHARE:.0%} of a video is without a pick.</li>")
    blank = [r.file_name for f, r in zip(facts, records, strict=True) if f.blank]
    if blank:
        items.append(
            f"<li><b>Nearly blank picks</b> (sharpness < {BLANK_SHARPNESS}): {html.escape(', '.join(blank))}</li>"
        )
    else:
        items.append("<li>No pick is a nearly blank frame.</li>")
    return '<ul class="checks">' + "".join(items) + "</ul>"


def _svg_boxes(rec: FrameRecord, categories: dict[int, str], colors: dict[int, str]) -> str:
    shapes = []
    for box in rec.boxes:
        x, y, w, h = box.xywh
        color = colors.get(box.category_id, "#868e96")
        label = html.escape(f"{categories.get(box.category_id, box.category_id)} {box.score:.2f}")
        shapes.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="none" stroke="{color}" '
            f'stroke-width="{max(1.5, rec.width / 400):.1f}"><title>{label}</title></rect>'
        )
    for obj in rec.novel_objects:
        bbox = obj.get("bbox")
        if isinstance(bbox, list) and len(bbox) == 4:
            x, y, w, h = (float(v) for v in bbox)
            shapes.append(
                f'<rect class="novel" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="none" '
                f'stroke="{NOVEL_COLOR}" stroke-dasharray="6 3" stroke-width="{max(3.0, rec.width / 200):.1f}">'
                f"<title>new: {html.escape(str(obj.get('category')))}</title></rect>"
            )
    return (
        f'<svg viewBox="0 0 {rec.width} {rec.height}" preserveAspectRatio="none" class="boxes">'
        + "".join(shapes)
        + "</svg>"
    )


def _score_rows(rec: FrameRecord, facts: PickFacts) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(label.split(':', 1)[1])}</td><td>{g:.3f}</td></tr>" for label, g in rec.scores.items()
    )
    product = f'<tr class="product"><td>product (picked by)</td><td>{facts.product:.4f}</td></tr>'
    return f'<table class="scores">{rows}{product}</table>'


def card_html(
    rec: FrameRecord, facts: PickFacts, thumbnail_jpeg: bytes, categories: dict[int, str], colors: dict[int, str]
) -> str:
    image = base64.b64encode(thumbnail_jpeg).decode("ascii")
    svg = _svg_boxes(rec, categories, colors)
    flags = []
    if facts.near_duplicate:
        flags.append(f"near-duplicate of {facts.closest_pick}")
    if facts.blank:
        flags.append("nearly blank")
    links = f'<a href="{html.escape(rec.datasource_url)}">frame</a>'
    if rec.read_url and rec.read_url != rec.datasource_url:
        links += f' · <a href="{html.escape(rec.read_url)}">presigned URL</a>'
    closest = (
        f"closest pick {html.escape(facts.closest_pick)} ({facts.closest_distance:.3f})" if facts.closest_pick else ""
    )
    flag_html = f'<p class="flag">check: {html.escape("; ".join(flags))}</p>' if flags else ""
    return f"""<figure class="pick" id="pick-{facts.rank}" data-file="{html.escape(rec.file_name)}">
<div class="frame"><img alt="{html.escape(rec.file_name)}" src="data:image/jpeg;base64,{image}">{svg}</div>
<figcaption><p class="title">#{facts.rank} {html.escape(rec.file_name)}</p>
<p>{html.escape(rec.video)} at {facts.time_s:.2f} s (frame {rec.frame_index}) · {len(rec.boxes)} boxes · {links}</p>
{_score_rows(rec, facts)}<p class="closest">{closest}</p>{flag_html}</figcaption></figure>"""


def legend_html(categories: dict[int, str], colors: dict[int, str], novel: bool) -> str:
    items = [
        f'<span class="key"><i style="border-color:{colors[cid]}"></i>{html.escape(name)}</span>'
        for cid, name in sorted(categories.items())
    ]
    if novel:
        items.append(
            f'<span class="key"><i style="border-color:{NOVEL_COLOR};border-style:dashed"></i>'
            "the objects that made the frame new (object-level diversity)</span>"
        )
    return '<p class="legend">' + "".join(items) + "</p>"


def table_html(records: list[FrameRecord], facts: list[PickFacts]) -> str:
    labels = list(records[0].scores) if records else []
    head = ["#", "frame", "video", "time (s)", *[label.split(":", 1)[1] for label in labels], "product", "closest pick"]
    rows = []
    for rec, f in zip(records, facts, strict=True):
        cells: list[Any] = [f.rank, rec.file_name, rec.video, f"{f.time_s:.2f}"]
        cells += [f"{rec.scores.get(label, 0.0):.4f}" for label in labels]
        cells += [f"{f.product:.4f}", f"{f.closest_distance:.3f}" if f.closest_pick else ""]
        rows.append(
            "<tr>"
            + "".join(
                f'<td><a href="#pick-{f.rank}">{html.escape(str(c))}</a></td>'
                if k == 1
                else f"<td>{html.escape(str(c))}</td>"
                for k, c in enumerate(cells)
            )
            + "</tr>"
        )
    header = "".join(f'<th data-col="{k}" title="sort">{html.escape(h)}</th>' for k, h in enumerate(head))
    return f'<table class="sortable" id="picks"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


STYLE = """
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 1em; }
.pick { margin: 0; border: 1px solid #dee2e6; padding: 0.5em; }
.pick .frame { position: relative; line-height: 0; }
.pick .frame img { width: 100%; border: none; }
.pick svg.boxes { position: absolute; left: 0; top: 0; width: 100%; height: 100%; }
.pick figcaption { font-size: 14px; line-height: 1.35; }
.pick .title { font-weight: 600; margin: 0.4em 0 0.2em; }
.pick p { margin: 0.2em 0; }
.pick table.scores { margin: 0.3em 0; }
.pick table.scores td { font-size: 13px; padding: 0.1em 0.5em; }
.pick tr.product td { font-weight: 600; }
.flag { color: #c92a2a; font-weight: 600; }
.legend .key { margin-right: 1.2em; font-size: 14px; }
.legend i { display: inline-block; width: 1.2em; height: 0.8em; border: 3px solid; margin-right: 0.3em;
            vertical-align: middle; }
table.sortable th { cursor: pointer; background: #f1f3f5; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th) => th.addEventListener("click", () => {
  const table = th.closest("table"), body = table.tBodies[0], col = Number(th.dataset.col);
  const asc = th.dataset.order !== "asc"; th.dataset.order = asc ? "asc" : "desc";
  const key = (row) => { const t = row.cells[col].innerText; const n = parseFloat(t); return isNaN(n) ? t : n; };
  Array.from(body.rows).sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1))
    .forEach((row) => body.appendChild(row));
}));
"""


A4 = (8.27, 11.69)  # inches: every PDF page has this size
PER_PAGE = 4


def pdf_gallery_pages(
    records: list[FrameRecord],
    facts: list[PickFacts],
    images: dict[str, np.ndarray],
    categories: dict[int, str],
    colors: dict[int, str],
) -> list[Any]:
    """A4 pages of PER_PAGE picks each (2 × 2), boxes drawn, captions at a readable size."""
    import matplotlib.patches
    import matplotlib.pyplot as plt

    pages = []
    for start in range(0, len(records), PER_PAGE):
        fig, axes = plt.subplots(2, 2, figsize=A4, squeeze=False)
        fig.subplots_adjust(left=0.04, right=0.96, top=0.94, bottom=0.03, hspace=0.45, wspace=0.08)
        fig.suptitle(
            f"Selected frames {start + 1}–{min(start + PER_PAGE, len(records))} of {len(records)}", fontsize=11
        )
        for ax in axes.flat:
            ax.axis("off")
        for ax, rec, f in zip(axes.flat, records[start:], facts[start:], strict=False):
            image = images.get(rec.file_name)
            if image is not None:
                ax.imshow(image[:, :, ::-1])
            for box in rec.boxes:
                x, y, w, h = box.xywh
                color = colors.get(box.category_id, "#868e96")
                ax.add_patch(matplotlib.patches.Rectangle((x, y), w, h, fill=False, color=color, linewidth=1.0))
            for obj in rec.novel_objects:
                bbox = obj.get("bbox")
                if isinstance(bbox, list) and len(bbox) == 4:
                    x, y, w, h = (float(v) for v in bbox)
                    ax.add_patch(
                        matplotlib.patches.Rectangle(
                            (x, y), w, h, fill=False, color=NOVEL_COLOR, linewidth=2.2, linestyle="--"
                        )
                    )
            scores = "\n".join(f"{label.split(':', 1)[1]}: {g:.3f}" for label, g in rec.scores.items())
            flags = (" · near-duplicate" if f.near_duplicate else "") + (" · nearly blank" if f.blank else "")
            ax.set_title(
                f"#{f.rank} {rec.file_name}\n{rec.video} at {f.time_s:.2f} s · {len(rec.boxes)} boxes{flags}\n"
                f"{scores}\nproduct {f.product:.4f}",
                fontsize=7.5,
                loc="left",
            )
        legend = [
            matplotlib.patches.Patch(edgecolor=colors[c], fill=False, label=n) for c, n in sorted(categories.items())
        ]
        if any(r.novel_objects for r in records):
            legend.append(
                matplotlib.patches.Patch(edgecolor=NOVEL_COLOR, fill=False, linestyle="--", label="new objects")
            )
        fig.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=8, frameon=False)
        pages.append(fig)
    return pages


def a4_page(title: str, png: bytes) -> Any:
    """A figure of any shape, as an image on an A4 page under its title (one page size throughout)."""
    import io

    import matplotlib.image
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=A4)
    fig.suptitle(title, fontsize=12, y=0.97)
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    height, width = image.shape[:2]
    box_w, box_h = 0.92, 0.88
    scale = min(box_w * A4[0] / width, box_h * A4[1] / height)
    w, h = width * scale / A4[0], height * scale / A4[1]
    ax = fig.add_axes((0.5 - w / 2, 0.93 - h, w, h))
    ax.imshow(image)
    ax.axis("off")
    return fig
