"""An HTTP proxy on 127.0.0.1 in front of a local S3 server that behaves like a real network and
object store: every request can get a fixed latency (a region away), and a share of requests get
503 SlowDown, a connection reset, or extra latency; the rest pass through (bytes as sent, so
request signatures stay valid; only `Connection: close` is added, an unsigned header, so that each
request gets its own connection and its own roll of the dice). Drills (tests) and `framesift bench
convert --latency-ms` use it; it listens on 127.0.0.1 only and stops with its caller."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from dataclasses import dataclass, field

SLOW_DOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\nContent-Length: 120\r\n\r\n"
    + b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>".ljust(120)
)


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """The request's head, and whatever of its body came with it. The rest of the body is not
    awaited: a client that sent `Expect: 100-continue` sends it only after the server answers."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b"", b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


@dataclass
class FaultyProxy:
    upstream: tuple[str, int]
    share: float = 0.3  # of requests that misbehave
    seed: int = 1
    latency_s: float = 0.0  # added to every request, as a distant endpoint would
    counts: dict[str, int] = field(default_factory=lambda: {"slowdown": 0, "reset": 0, "latency": 0, "ok": 0})

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _fault(self) -> str:
        with self._lock:
            roll = self._rng.random()
        if roll >= self.share:
            return "ok"
        return ("slowdown", "reset", "latency")[int(roll / self.share * 3)]

    def _handle(self, conn: socket.socket) -> None:
        fault = self._fault()
        with self._lock:
            self.counts[fault] += 1
        try:
            head, rest = _read_head(conn)
            if not head:
                return
            if fault == "slowdown":  # a final answer before the body: HTTP lets the client stop sending
                conn.sendall(SLOW_DOWN)
                return
            if fault == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return  # closing with linger 0 sends RST
            if fault == "latency":
                time.sleep(0.1)
            if self.latency_s:
                time.sleep(self.latency_s)
            lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
            upstream = socket.create_connection(self.upstream)
            upstream.sendall(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + rest)
            body = threading.Thread(target=self._pipe, args=(conn, upstream), daemon=True)
            body.start()  # the rest of the body (after a 100 Continue, if asked for)
            self._pipe(upstream, conn)  # the response, until the server closes
            upstream.close()
        except OSError:
            pass
        finally:
            conn.close()

    @staticmethod
    def _pipe(source: socket.socket, dest: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                dest.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dest.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=5)
