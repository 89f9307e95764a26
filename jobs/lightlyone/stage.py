"""The select stage with `engine: lightlyone`: drive the run, then write the selection.

In a pod the token arrives as LIGHTLY_TOKEN from the run's Secret (by reference); every state
change is printed as one `FRAMESIFT_LIGHTLYONE {json}` line, which the operator reads from the
pod's log for `.status.lightlyone` (ids and states only; the token is redacted from everything).
Locally the same lines go to stderr in words, with the `docker run` line of a Worker.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from framesift.api.vocabulary import LIGHTLYONE_STATUS_MARKER
from framesift.jobs.context import RunContext
from framesift.jobs.lightlyone import plan
from framesift.jobs.lightlyone.driver import Driver, LightlyOneError, make_client, request_timeout, status_ids
from framesift.jobs.lightlyone.selection import selection_document, write_selection
from framesift.jobs.redaction import Redactor

TOKEN_ENV = "LIGHTLY_TOKEN"


class MissingToken(RuntimeError):
    """No Lightly API token where the run looks for it."""


def token_source(ctx: RunContext) -> str:
    ref = ctx.run.spec.selector.token
    if _in_pod() and ref is not None:
        return f"the Secret {ref.name!r}, key {ref.key!r} (spec.selector.token)"
    return f"${TOKEN_ENV}"


def read_token(ctx: RunContext) -> str:
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise MissingToken(
            f"engine lightlyone needs the Lightly API token in ${TOKEN_ENV} "
            "(in a cluster: spec.selector.token names the Secret and key)"
        )
    return token


def _in_pod() -> bool:
    return bool(os.environ.get("FRAMESIFT_TERMINATION_LOG"))


def _report(doc: dict[str, Any]) -> None:
    if _in_pod():
        print(LIGHTLYONE_STATUS_MARKER + json.dumps(doc, separators=(",", ":")), flush=True)
    else:
        parts = ", ".join(f"{k} {v}" for k, v in doc.items() if k != "message")
        message = f": {doc['message']}" if doc.get("message") else ""
        print(f"LightlyOne: {parts}{message}", file=sys.stderr, flush=True)


def _announce(line: str) -> None:
    if not _in_pod():
        print(f"LightlyOne: start a Worker for this run with\n  {line}", file=sys.stderr, flush=True)


def run_lightlyone(ctx: RunContext, client: Any = None) -> dict[str, Any]:
    """Drive the LightlyOne run to its end and write the selection; returns the selection
    document. Raises LightlyOneError (with `summary`: the ids so far) when the run cannot end well."""
    token = read_token(ctx)
    redact = Redactor(token)
    redact.install()
    if client is None:
        api_retry_s = float(plan.timeouts(ctx.run)["api"] or 0)
        client = make_client(ctx.run.spec.selector.server_location, token, request_timeout(api_retry_s))
    # urllib3's retry lines repeat the driver's own (the client's config resets this level when built)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    driver = Driver(ctx, client, token_source(ctx), _report, announce_worker=_announce)
    try:
        driver.setup()
        driver.wait()
        outcome = driver.results()
    except LightlyOneError as err:
        driver.remember_failure(err.reason, redact(str(err)))  # a rerun schedules anew
        summary = {"lightlyone": status_ids(driver.state), "reason": str(err.reason)}
        raise LightlyOneError(err.reason, redact(str(err)), summary) from None
    document = selection_document(ctx, outcome.rows, outcome.tag, status_ids(outcome.state))
    write_selection(ctx, document, outcome.report_pdf)
    for note in outcome.notes:
        print(f"LightlyOne: {redact(note)}", file=sys.stderr)
    return document
