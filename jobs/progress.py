"""Progress bars for long work (stderr), quiet when not attached to a terminal unless asked."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def video_bar(label: str, total: int | None, enabled: bool = True) -> Any:
    """A per-video bar: frames done, frames/s."""
    return tqdm(
        total=total,
        desc=label[-40:],
        unit="frame",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        leave=True,
        mininterval=0.5,
    )


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
