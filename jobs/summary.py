"""A stage's summary as its pod's termination message: how the operator learns what a stage
found (video count, selected count, report URI...) without reading the run's Secrets or store.

Kubernetes keeps at most 4 KiB of it; optional keys are dropped, largest first, to fit.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from framesift.api.vocabulary import TERMINATION_LOG_ENV, TERMINATION_MESSAGE_MAX

log = logging.getLogger(__name__)


def fit(summary: dict[str, Any], optional: tuple[str, ...] = ()) -> str:
    """The summary as compact JSON within the size limit: `optional` keys go first, then the
    text of an `error` is cut."""
    doc = dict(summary)
    text = json.dumps(doc, separators=(",", ":"))
    for key in sorted((k for k in optional if k in doc), key=lambda k: -len(json.dumps(doc[k]))):
        if len(text.encode()) <= TERMINATION_MESSAGE_MAX:
            break
        doc.pop(key)
        doc.setdefault("omitted", []).append(key)
        text = json.dumps(doc, separators=(",", ":"))
    if len(text.encode()) > TERMINATION_MESSAGE_MAX and "error" in doc:
        doc["error"] = str(doc["error"])[: TERMINATION_MESSAGE_MAX // 2]
        text = json.dumps(doc, separators=(",", ":"))
    return text


def write_summary(summary: dict[str, Any], optional: tuple[str, ...] = ()) -> None:
    """Write the summary where the pod's terminationMessagePath points ($FRAMESIFT_TERMINATION_LOG);
    nowhere outside a pod."""
    path = os.environ.get(TERMINATION_LOG_ENV)
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(fit(summary, optional))
    except OSError as err:  # a summary is a courtesy to the operator: never fail the stage for it
        log.warning("cannot write the stage summary to %s: %s", path, err)


def read_summary(message: str | None) -> dict[str, Any] | None:
    """A termination message back as a summary; None when it is not one of ours (a log tail)."""
    if not message:
        return None
    try:
        doc = json.loads(message)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
