"""One small interface over local folders and S3 (or any S3-compatible server).

Keys are relative to the location's root and always use '/'. Writes are atomic: a local write
goes to a temporary file that is renamed into place, an S3 PUT publishes whole or not at all;
stages write their completion marker last, so a reader never sees a half-written result.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import unquote, urlparse

from framesift.api.models import Location

MULTIPART_THRESHOLD = 64 * 1024 * 1024
_UMASK = os.umask(0)
os.umask(_UMASK)


log = logging.getLogger(__name__)

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def prefetch_map(fn: Callable[[_In], _Out], items: Iterable[_In], workers: int = 8) -> Iterator[_Out]:
    """fn over items on `workers` threads, yielded in order, at most 2×workers ahead of the
    consumer: round trips overlap while only a few results are held (ThreadPoolExecutor.map
    would start every call at once and hold every result)."""
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[_Out]] = deque(pool.submit(fn, item) for item in islice(source, 2 * workers))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(fn, item) for item in islice(source, 1))
            yield result


class StorageError(RuntimeError):
    """A storage operation failed; the message names the URI and what to check."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    mtime: float | None

    @property
    def identity(self) -> str:
        """Content identity used for caching: the ETag where the store gives one, else size+mtime."""
        if self.etag:
            return f"etag:{self.etag.strip(chr(34))}"
        return f"size:{self.size}:mtime:{int(self.mtime or 0)}"


def join_key(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class Storage:
    """Base class: the operations every stage uses."""

    uri: str

    def list(self, prefix: str = "", name_prefix: str = "") -> Iterator[ObjectInfo]:
        """The objects under the folder `prefix` (sorted by key); with `name_prefix`, only those
        whose path below the folder starts with it."""
        raise NotImplementedError

    def stat(self, key: str) -> ObjectInfo | None:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def open_read(self, key: str) -> IO[bytes]:
        raise NotImplementedError

    def download(self, key: str, dest: Path) -> Path:
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        raise NotImplementedError

    def upload_file(self, source: Path, key: str, content_type: str | None = None) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def url(self, key: str) -> str:
        raise NotImplementedError

    def read_url(self, key: str, expires_s: int) -> str:
        """A URL a labelling tool can fetch: presigned GET for S3, file URI locally."""
        raise NotImplementedError

    def local_path(self, key: str) -> Path | None:
        """The file itself when the store is local (saves a copy), else None."""
        return None

    # ----- shared helpers -----

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def write_text(self, key: str, text: str, content_type: str = "application/json") -> None:
        self.write_bytes(key, text.encode("utf-8"), content_type)

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def same_content(self, key: str, data: bytes, existing: ObjectInfo) -> bool:
        """Whether the object `existing` (from a listing) already holds exactly `data`."""
        raise NotImplementedError

    def write_many(self, items: Sequence[tuple[str, bytes]], content_type: str, workers: int = 16) -> None:
        """Thousands of small objects: concurrently, failing on the first error."""
        if not items:
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(self.write_bytes, k, d, content_type) for k, d in items]:
                future.result()

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write `key` only if it does not exist (atomically); False when it already does."""
        raise NotImplementedError

    def clean_scratch(self) -> None:
        """Remove what killed writers left in the output's scratch folder (and, from older
        versions, `.<name>.tmp-*` files inside published folders). Local outputs only."""

    def check_writable(self) -> None:
        """Fail before any expensive work when the location cannot be written."""
        probe = join_key(".framesift", "probes", f"write-probe-{os.getpid()}-{threading.get_ident()}")
        try:
            self.write_bytes(probe, b"ok", "text/plain")
            self.delete(probe)
        except StorageError as err:
            raise StorageError(f"output {self.uri} is not writable: {err}") from err


class LocalStorage(Storage):
    def __init__(self, root: Path):
        self.root = root.resolve()
        self.uri = self.root.as_uri() + "/"

    def _path(self, key: str) -> Path:
        # Normalise '..' without resolving symlinks: a linked video inside the folder is fine.
        path = Path(os.path.normpath(self.root / key)) if key else self.root
        if path != self.root and self.root not in path.parents:
            raise StorageError(f"key {key!r} leaves {self.uri}")
        return path

    def same_content(self, key: str, data: bytes, existing: ObjectInfo) -> bool:
        if existing.size != len(data):
            return False
        try:
            return self._path(key).read_bytes() == data
        except OSError:
            return False

    def create_exclusive(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
        except FileExistsError:
            return False
        except OSError as err:
            raise StorageError(f"cannot write {self.url(key)}: {err.strerror or err}") from err
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return True

    def clean_scratch(self) -> None:
        scratch = self.root / ".framesift" / "tmp"
        for tmp in scratch.glob("*.tmp-*") if scratch.is_dir() else []:
            pid = tmp.name.split(".tmp-", 1)[1].split("-", 1)[0]
            if not (pid.isdigit() and pid_alive(int(pid))):
                tmp.unlink(missing_ok=True)
        for stale in self.root.glob(".lightly/**/.*.tmp-*"):
            if time.time() - stale.stat().st_mtime > 3600:  # an older version's litter
                stale.unlink(missing_ok=True)

    def list(self, prefix: str = "", name_prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._path(prefix)
        if base.is_file():
            yield self._info(base)
            return
        if not base.is_dir():
            return
        found = [
            Path(dirpath) / name
            for dirpath, _dirs, filenames in os.walk(base)
            for name in filenames
            if ".tmp-" not in name  # a write in progress
            and (Path(dirpath) / name).relative_to(base).as_posix().startswith(name_prefix)
        ]
        # Sorted by key, as S3 lists: stages rely on a stable order.
        for path in sorted(found, key=lambda p: p.relative_to(self.root).as_posix()):
            yield self._info(path)

    def _info(self, path: Path) -> ObjectInfo:
        st = path.stat()
        return ObjectInfo(path.relative_to(self.root).as_posix(), st.st_size, None, st.st_mtime)

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        return self._info(path) if path.is_file() else None

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as err:
            raise StorageError(f"{self.url(key)} does not exist") from err
        except OSError as err:
            raise StorageError(f"cannot read {self.url(key)}: {err.strerror}") from err

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return self._path(key).open("rb")
        except OSError as err:
            raise StorageError(f"cannot read {self.url(key)}: {err.strerror}") from err

    def download(self, key: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(key), dest)
        return dest

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def _publish(self, key: str, write: Any) -> None:
        # Written beside the output's own folders (same filesystem: the rename is atomic), never in
        # the published folder: a kill mid-write leaves nothing where readers look (the LightlyOne
        # Worker reads every file of .lightly/predictions/<task>/).
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch = self.root / ".framesift" / "tmp"
            scratch.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.tmp-{os.getpid()}-", dir=scratch)
            try:
                os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files get the usual mode
                with os.fdopen(fd, "wb") as handle:
                    write(handle)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise StorageError(f"cannot write {self.url(key)}: {err.strerror or err}") from err

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._publish(key, lambda handle: handle.write(data))

    def upload_file(self, source: Path, key: str, content_type: str | None = None) -> None:
        def copy(handle: IO[bytes]) -> None:
            with source.open("rb") as src:
                shutil.copyfileobj(src, handle, 1024 * 1024)

        self._publish(key, copy)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str) -> str:
        return self._path(key).as_uri()

    def read_url(self, key: str, expires_s: int) -> str:
        return self.url(key)


S3_ATTEMPTS = int(os.environ.get("AWS_MAX_ATTEMPTS") or 8)  # the standard variable wins
CONNECTION_ERRORS = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionError",
        "ProxyConnectionError",
    }
)


class S3Storage(Storage):
    def __init__(self, bucket: str, prefix: str, location: Location, credentials: dict[str, str] | None = None):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/" + (f"{self.prefix}/" if self.prefix else "")
        config = Config(
            retries={"max_attempts": S3_ATTEMPTS, "mode": "adaptive"},  # backoff on 5xx, SlowDown, resets
            max_pool_connections=32,
            s3={"addressing_style": _addressing_style(location, credentials)},
            signature_version="s3v4",
        )
        # Credentials come from the environment (AWS_* variables, filled from the referenced Secret
        # in a pod); endpoint and region from the spec, else the AWS_* environment too.
        # The operator passes a referenced Secret's keys explicitly (held in memory only).
        creds = credentials or {}
        session = boto3.session.Session(
            aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=creds.get("AWS_SESSION_TOKEN"),
        )
        self.client = session.client(
            "s3",
            endpoint_url=location.endpoint_url or creds.get("AWS_ENDPOINT_URL") or None,
            region_name=location.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
            config=config,
        )
        from boto3.s3.transfer import TransferConfig

        self.transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=16 * 1024 * 1024)

    def _key(self, key: str) -> str:
        return join_key(self.prefix, key)

    def _rel(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def _error(self, action: str, key: str, err: Exception) -> StorageError:
        # botocore messages hold no credentials; keep only the code and message.
        code = getattr(err, "response", {}).get("Error", {}).get("Code") or _inner_code(err)
        hint = ""
        if code in CONNECTION_ERRORS:
            hint = f" (the S3 endpoint did not answer after {S3_ATTEMPTS} tries with backoff: is it up and reachable?)"
        elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            hint = " (check the credentials: AWS_* variables locally, the referenced Secret in a cluster)"
        elif code in ("NoSuchBucket",):
            hint = " (create the bucket or fix the URI)"
        return StorageError(f"cannot {action} {self.url(key)}: {code}{hint}")

    def list(self, prefix: str = "", name_prefix: str = "") -> Iterator[ObjectInfo]:
        full = self._key(prefix)
        if full:
            full += "/"  # list a folder: "data" must not match "data2/..."
        full += name_prefix
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    if item["Key"].endswith("/"):
                        continue
                    yield ObjectInfo(
                        self._rel(item["Key"]), int(item["Size"]), item.get("ETag"), item["LastModified"].timestamp()
                    )
        except Exception as err:
            raise self._error("list", prefix, err) from err

    def stat(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error("stat", key, err) from err
        except Exception as err:  # connection refused or reset, timeouts: after botocore's retries
            raise self._error("stat", key, err) from err
        return ObjectInfo(key, int(head["ContentLength"]), head.get("ETag"), head["LastModified"].timestamp())

    def read_bytes(self, key: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            return body
        except Exception as err:
            raise self._error("read", key, err) from err

    def open_read(self, key: str) -> IO[bytes]:
        try:
            stream: IO[bytes] = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            return stream
        except Exception as err:
            raise self._error("read", key, err) from err

    def download(self, key: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        try:
            self.client.download_file(self.bucket, self._key(key), str(tmp), Config=self.transfer)
            os.replace(tmp, dest)
        except Exception as err:
            tmp.unlink(missing_ok=True)
            raise self._error("download", key, err) from err
        return dest

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
        except Exception as err:
            raise self._error("write", key, err) from err

    def upload_file(self, source: Path, key: str, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else None
        try:
            self.client.upload_file(str(source), self.bucket, self._key(key), ExtraArgs=extra, Config=self.transfer)
        except Exception as err:
            raise self._error("upload", key, err) from err

    def same_content(self, key: str, data: bytes, existing: ObjectInfo) -> bool:
        # a single-part PUT's ETag is the MD5 of the body: no read needed
        import hashlib

        etag = (existing.etag or "").strip('"')
        return existing.size == len(data) and "-" not in etag and etag == hashlib.md5(data).hexdigest()

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """A conditional PUT (If-None-Match: *): AWS S3 and current S3-compatible servers refuse it
        with 412 when the object exists."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            if code in ("NotImplemented", "501", "InvalidArgument", "InvalidRequest"):
                # an S3-compatible server without conditional writes: check, then write (a race
                # between two processes starting in the same instant is then not excluded)
                log.warning("%s does not support conditional writes: %s is created unguarded", self.uri, key)
                if self.stat(key) is not None:
                    return False
                self.write_bytes(key, data)
                return True
            raise self._error("write", key, err) from err
        except Exception as err:
            raise self._error("write", key, err) from err
        return True

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as err:
            raise self._error("delete", key, err) from err

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def read_url(self, key: str, expires_s: int) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_s
        )
        return url


def _addressing_style(location: Location, credentials: dict[str, str] | None) -> str:
    """Path style for S3-compatible servers (MinIO, Ceph, SeaweedFS, ... rarely resolve
    bucket.host names), virtual-hosted for AWS, unless the spec says."""
    if location.path_style is not None:
        return "path" if location.path_style else "virtual"
    endpoint = (
        location.endpoint_url
        or (credentials or {}).get("AWS_ENDPOINT_URL")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    return "path" if endpoint and "amazonaws.com" not in endpoint else "auto"


def open_storage(
    location: Location | str, base_dir: Path | None = None, credentials: dict[str, str] | None = None
) -> Storage:
    """A Storage for a spec location; relative local paths resolve against base_dir (the manifest's folder).
    Credentials come from the environment unless given (the operator reads them from a Secret)."""
    loc = Location(uri=location) if isinstance(location, str) else location
    uri = loc.uri
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        return S3Storage(parsed.netloc, unquote(parsed.path), loc, credentials)
    if uri.startswith("file://"):
        path = Path(unquote(urlparse(uri).path))
    else:
        path = Path(uri).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
    return LocalStorage(path)


def cache_dir() -> Path:
    root = Path(os.environ.get("FRAMESIFT_CACHE", Path.home() / ".cache" / "framesift"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def process_temp_dir() -> Path:
    """This process's scratch folder in the cache (`tmp/pid-<pid>`): downloaded videos, results
    before upload, frames before export. A process killed with SIGKILL cannot clean up after
    itself, so each start removes the folders of processes that no longer exist."""
    root = cache_dir() / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    for folder in root.glob("pid-*"):
        pid = folder.name.removeprefix("pid-")
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    mine = root / f"pid-{os.getpid()}"
    mine.mkdir(exist_ok=True)
    return mine


def _inner_code(err: Exception) -> str:
    """boto3's transfer errors wrap the S3 error code in their message text."""
    text = str(err)
    if "(" in text and ")" in text:
        return text[text.index("(") + 1 : text.index(")")]
    return type(err).__name__
