"""A planted Lightly token never appears in anything a run prints or writes, whatever way the API
fails: connection refused, DNS failure, timeout, TLS error, 5xx, 4xx — through `framesift run`
and through `framesift job select` as the select pod runs it (termination message included)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from framesift.api.models import Location
from framesift.jobs.storage import open_storage
from tests.helpers import manifest, synthetic_video, write_manifest

pytestmark = pytest.mark.slow
FRAMESIFT = str(Path(sys.executable).parent / "framesift")
PLANTED = "planted-secret-123-xyz"
DIVERSITY = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Answering:
    """An HTTP server that answers every request with one status (a body quoting the query)."""

    def __init__(self, status: int):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _answer(self) -> None:
                body = f'{{"code": "X", "error": "failed for {self.path}"}}'.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """Accepts connections and never answers: the client's read times out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture
def failure_servers() -> Iterator[dict[str, str]]:
    ok, unavailable, refused, silent = Answering(200), Answering(503), Answering(400), Silent()
    yield {
        "connection refused": f"http://127.0.0.1:{free_port()}",
        "DNS failure": "http://lightly-api.framesift-test.invalid",
        "timeout": f"http://127.0.0.1:{silent.port}",
        "TLS error": f"https://127.0.0.1:{ok.port}",  # TLS spoken to a plain HTTP server
        "5xx": f"http://127.0.0.1:{unavailable.port}",
        "4xx": f"http://127.0.0.1:{refused.port}",
    }
    for server in (ok, unavailable, refused, silent):
        server.stop()


def everything_written(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_the_token_is_never_printed_whatever_way_the_api_fails(
    s3_server, failure_servers: dict[str, str], tmp_path: Path
) -> None:
    src, dst = s3_server.make_bucket(), s3_server.make_bucket()
    location = {"pathStyle": True, "endpointUrl": s3_server.endpoint}
    credentials = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    store = open_storage(Location(uri=f"s3://{src}/videos/", **location), credentials=credentials)
    store.upload_file(synthetic_video(tmp_path / "square.mp4", frames=12, seed=3), "square.mp4")
    env = {**os.environ, **s3_server.env(), "LIGHTLY_TOKEN": PLANTED}

    def run_manifest(server: str) -> Path:
        doc = manifest(
            "leak",
            f"s3://{src}/videos/",
            f"s3://{dst}/out/",
            input=dict(location),
            output=dict(location),
            selection={
                "n_samples": 3,
                "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}],
            },
            selector={
                "engine": "lightlyone",
                "token": {"name": "lightly-token", "key": "token"},
                "serverLocation": server,
                "pollInterval": "1s",
                "apiRetryTimeout": "2s",
            },
        )
        return write_manifest(tmp_path / "run.yaml", doc)

    printed: dict[str, str] = {}
    first, *others = failure_servers.items()
    result = subprocess.run(
        [FRAMESIFT, "run", str(run_manifest(first[1])), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 4, result.stderr[-2000:]  # GAVE_UP: the API stayed unreachable
    printed[f"run, {first[0]}"] = result.stdout + result.stderr

    for kind, server in [first, *others]:  # the select pod: inference results are reused
        termination = tmp_path / f"termination-{len(printed)}"
        result = subprocess.run(
            [FRAMESIFT, "job", "select", "--run", str(run_manifest(server)), "--no-progress"],
            env={**env, "FRAMESIFT_TERMINATION_LOG": str(termination)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode != 0, f"{kind}: {result.stderr[-2000:]}"
        assert termination.exists(), f"{kind}: no termination message: {result.stderr[-1500:]}"
        printed[f"job select, {kind}"] = result.stdout + result.stderr + termination.read_text()

    for where, text in printed.items():
        assert PLANTED not in text, f"{where} printed the token:\n{text[-3000:]}"
        assert "error: " in text, f"{where} did not say why it failed:\n{text[-2000:]}"
    assert PLANTED.encode() not in everything_written(s3_server.root)
