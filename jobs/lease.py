"""A run's lease on its folders in the output: one `framesift run` of a name per output at a time.

Two processes running the same run name on the same output would mix their stages' results
(one selects 12 frames, the other 5, and both export whichever selection landed last). The
lease is an object created only if absent (`Storage.create_exclusive`: O_EXCL locally, a
conditional PUT on S3), renewed while the run works and deleted when it ends; one whose holder
died expires after LEASE_TTL_S — at once when the holder was a process on this very host that is
gone (a SIGKILLed `framesift run`), and at once with `framesift run --break-lease`.

A conditional PUT protects only where the S3 server honours `If-None-Match: *`; some S3-compatible
servers ignore it (both writers "win"). The first lease on an S3 output probes that and warns once.
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
from framesift.jobs.storage import LocalStorage, pid_alive

log = logging.getLogger(__name__)
LEASE_TTL_S = 600.0
BREAK_LEASE_FLAG = "--break-lease"


def process_start(pid: int) -> str | None:
    """When the process started (Linux: /proc/<pid>/stat field 22), to tell a reused pid apart."""
    try:
        stat = open(f"/proc/{pid}/stat", encoding="ascii").read()  # noqa: SIM115 - one read
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def holder_is_gone(current: dict[str, Any], host: str) -> bool:
    """True when the lease's holder was a process on this host that no longer runs."""
    if current.get("host") != host or not isinstance(current.get("pid"), int):
        return False
    pid = int(current["pid"])
    if not pid_alive(pid):
        return True
    started = current.get("pidStart")
    return started is not None and process_start(pid) not in (None, started)


_probed: set[str] = set()  # outputs whose conditional writes were probed by this process


class LeaseHeld(RuntimeError):
    """Another process holds this run's lease on the output."""


class RunLease:
    def __init__(self, ctx: RunContext, ttl: float = LEASE_TTL_S, break_lease: bool = False):
        self.ctx = ctx
        self.ttl = ttl
        self.break_lease = break_lease
        self.host = socket.gethostname()
        self.key = ctx.run_key("lease.json")
        self.holder = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.pid_start = process_start(os.getpid())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _document(self) -> bytes:
        doc = {
            "holder": self.holder,
            "host": self.host,
            "pid": os.getpid(),
            "pidStart": self.pid_start,
            "expires": time.time() + self.ttl,
        }
        return json.dumps(doc).encode()

    def acquire(self) -> None:
        output = self.ctx.output
        self._probe_conditional_writes()
        for _ in range(2):
            if output.create_exclusive(self.key, self._document()):
                self._thread = threading.Thread(target=self._renew, daemon=True)
                self._thread.start()
                return
            current = self._current() or {}
            holder = current.get("holder")
            if self.break_lease:
                log.warning("run %s: breaking the lease of %s (%s)", self.ctx.name, holder, BREAK_LEASE_FLAG)
            elif holder_is_gone(current, self.host):
                log.warning("run %s: taking over the lease of %s: that process is gone", self.ctx.name, holder)
            elif current.get("expires", 0) > time.time():
                until = time.strftime("%H:%M:%S", time.localtime(current["expires"]))
                raise LeaseHeld(
                    f"run {self.ctx.name!r} on {output.uri} is being run by {holder} (lease until "
                    f"{until}, renewed while it works): wait for it, give this run another metadata.name, "
                    f"or, if that process is gone, `framesift run {BREAK_LEASE_FLAG}`"
                )
            else:
                log.warning("run %s: taking over an expired lease (%s)", self.ctx.name, holder)
            output.delete(self.key)
        raise LeaseHeld(f"run {self.ctx.name!r} on {output.uri}: another process took the lease first")

    def _probe_conditional_writes(self) -> None:
        """Warn once per output when its server lets a second create-if-absent succeed."""
        output = self.ctx.output
        if isinstance(output, LocalStorage) or output.uri in _probed:
            return
        _probed.add(output.uri)
        probe = self.ctx.run_key(f"lease-probe-{uuid.uuid4().hex[:8]}")
        try:
            first = output.create_exclusive(probe, b"1")
            second = output.create_exclusive(probe, b"2")
        finally:
            output.delete(probe)
        if first and second:
            log.warning(
                "the output's S3 server ignores If-None-Match (conditional writes): the run lease cannot keep "
                "two runs of one name on %s apart; run one at a time (AWS S3 and current MinIO honour it)",
                output.uri,
            )

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
