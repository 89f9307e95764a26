"""Progress for long work on stderr: a bar on a terminal; periodic log lines anywhere else (a file,
a pod's log, CI), where a bar would become one line of thousands of characters."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)


class LogProgress:
    """Progress for logs (Kubernetes pods, CI): a line every `every` seconds instead of a bar."""

    def __init__(self, label: str, total: int | None, every: float = 30.0):
        self.label, self.total, self.every = label, total, every
        self.done = 0
        self.started = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            of = f"/{self.total}" if self.total else ""
            log.info("%s: %d%s frames, %.1f frames/s", self.label, self.done, of, rate)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.monotonic() - self.started
        if seconds >= self.every:  # long work ends with a line of its own; short work needs none
            log.info("%s: %d frames in %.0f s (%.1f frames/s)", self.label, self.done, seconds, self.done / seconds)


def video_bar(label: str, total: int | None, enabled: bool = True) -> Any:
    """A per-video bar when stderr is a terminal (frames done, frames/s); periodic log lines
    otherwise, or when bars are turned off (--no-progress)."""
    if not enabled or not sys.stderr.isatty():
        return LogProgress(label, total)
    return tqdm(
        total=total,
        desc=label[-40:],
        unit="frame",
        file=sys.stderr,
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
