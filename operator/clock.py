"""The operator's idea of now. `FRAMESIFT_CLOCK_FILE` (tests only) names a file holding an
ISO-8601 UTC time that the schedule controller takes as now, so tests can move time."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

CLOCK_FILE_ENV = "FRAMESIFT_CLOCK_FILE"


def now() -> datetime:
    path = os.environ.get(CLOCK_FILE_ENV)
    if path:
        return datetime.fromisoformat(Path(path).read_text().strip().replace("Z", "+00:00")).astimezone(UTC)
    return datetime.now(tz=UTC)
