"""A run's lease on its folders in the output: one `framesift run` of a name per output at a time.

Two processes running the same run name on the same output would mix their stages' results
(one selects 12 frames, the other 5, and both export whichever selection landed last). The
lease is an object created only if absent (`Storage.create_exclusive`: O_EXCL locally, a
conditional PUT on S3), renewed while the run works and deleted when it ends; one whose holder
died expires after LEASE_TTL_S.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from framesift.jobs.context import RunContext

log = logging.getLogger(__name__)
LEASE_TTL_S = 600.0


class LeaseHeld(RuntimeError):
    """Another process holds this run's lease on the output."""


class RunLease:
    def __init__(self, ctx: RunContext, ttl: float = LEASE_TTL_S):
        self.ctx = ctx
        self.ttl = ttl
        self.key = ctx.run_key("lease.json")
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _document(self) -> bytes:
        return json.dumps({"holder": self.holder, "expires": time.time() + self.ttl}).encode()

    def acquire(self) -> None:
        output = self.ctx.output
        for _ in range(2):
            if output.create_exclusive(self.key, self._document()):
                self._thread = threading.Thread(target=self._renew, daemon=True)
                self._thread.start()
                return
            current = self._current()
            if current and current.get("expires", 0) > time.time():
                until = time.strftime("%H:%M:%S", time.localtime(current["expires"]))
                raise LeaseHeld(
                    f"run {self.ctx.name!r} on {output.uri} is being run by {current.get('holder')} (lease until "
                    f"{until}, renewed while it works): wait for it, or give this run another metadata.name"
                )
            log.warning("run %s: taking over an expired lease (%s)", self.ctx.name, (current or {}).get("holder"))
            output.delete(self.key)
        raise LeaseHeld(f"run {self.ctx.name!r} on {output.uri}: another process took the lease first")

    def _current(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.ctx.output.read_text(self.key))
        except Exception:  # gone meanwhile, or half-written by a killed writer: treat as expired
            return None
        return doc if isinstance(doc, dict) else None

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            current = self._current()
            if current and current.get("holder") == self.holder:
                self.ctx.output.write_bytes(self.key, self._document(), "application/json")

    def release(self) -> None:
        self._stop.set()
        current = self._current()
        if current and current.get("holder") == self.holder:
            self.ctx.output.delete(self.key)

    def __enter__(self) -> RunLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
