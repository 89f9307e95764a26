"""Shared fixtures: a real S3 server on 127.0.0.1 (rclone serve s3, signature-checking), the
shared real clips, synthetic videos, and an offline Ultralytics config."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("FRAMESIFT_CACHE", str(REPO / ".cache" / "test"))
os.environ.setdefault("YOLO_CONFIG_DIR", str(REPO / ".cache" / "test" / "ultralytics"))


def shared_dir() -> Path:
    return Path(os.environ.get("FRAMESIFT_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def real_videos() -> Path:
    path = shared_dir() / "data" / "videos"
    if not (path / "vtest.avi").exists():
        pytest.fail(f"the shared test clips are missing at {path} (set FRAMESIFT_SHARED)")
    return path


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    root: Path

    def make_bucket(self, name: str | None = None) -> str:
        """Through the S3 API: rclone caches its directory listing, so a folder made behind its
        back may stay invisible to it."""
        import boto3
        from botocore.config import Config

        name = name or f"b-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        client.create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    from framesift.jobs.local_s3 import start_local_s3

    root = tmp_path_factory.mktemp("s3")
    try:
        local = start_local_s3(root, "AKIAFRAMESIFTTEST")
    except RuntimeError as err:
        pytest.fail(str(err))
    server = S3Server(local.endpoint, local.access_key, local.secret_key, root)
    yield server
    local.stop()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    return s3_server
