from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from framesift.api.models import Location
from framesift.jobs import storage as storage_mod
from framesift.jobs.storage import LocalStorage, StorageError, open_storage


def s3(server, bucket: str, prefix: str = "data") -> storage_mod.Storage:
    return open_storage(Location(uri=f"s3://{bucket}/{prefix}/", endpointUrl=server.endpoint, pathStyle=True))


def test_local_write_is_atomic_and_listed(tmp_path: Path) -> None:
    store = open_storage(str(tmp_path / "out"))
    store.write_text("a/b.json", "{}")
    store.write_bytes("c.bin", b"x" * 10)
    assert [o.key for o in store.list()] == ["a/b.json", "c.bin"]
    assert store.read_text("a/b.json") == "{}"
    assert not list((tmp_path / "out" / "a").glob(".*tmp*"))
    with pytest.raises(StorageError, match="leaves"):
        store.read_bytes("../escape")
    with pytest.raises(StorageError, match="does not exist"):
        store.read_bytes("missing.json")


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path: Path) -> None:
    store = open_storage("videos/", base_dir=tmp_path)
    assert isinstance(store, LocalStorage) and store.root == (tmp_path / "videos").resolve()
    assert open_storage((tmp_path / "x").as_uri()).uri == (tmp_path / "x").as_uri() + "/"


def test_unwritable_local_output_fails_the_probe(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="not writable"):
        open_storage(str(blocker / "out")).check_writable()


def test_s3_pagination_stream_and_presigned_get(s3_env) -> None:
    bucket = s3_env.make_bucket()
    store = s3(s3_env, bucket)
    store.write_many([(f"many/{i:05d}.json", b"{}") for i in range(1100)], "application/json")
    store.write_bytes("other.txt", b"hello")
    listed = [o.key for o in store.list("many")]
    assert len(listed) == 1100 and listed[0] == "many/00000.json"  # crosses the 1000-key page
    assert all(o.etag for o in store.list("many"))
    with store.open_read("other.txt") as stream:
        assert stream.read() == b"hello"
    url = store.read_url("other.txt", 3600)
    assert url.startswith(s3_env.endpoint) and "Signature" in url
    assert urllib.request.urlopen(url).read() == b"hello"


def test_s3_multipart_upload_roundtrip(s3_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_mod, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    store = s3(s3_env, s3_env.make_bucket())
    store.transfer.multipart_chunksize = 5 * 1024 * 1024
    big = tmp_path / "big.bin"
    payload = bytes(range(256)) * (45 * 1024)  # 11.25 MiB → 3 parts
    big.write_bytes(payload)
    store.upload_file(big, "big.bin")
    info = store.stat("big.bin")
    assert info is not None and info.size == len(payload)
    assert info.etag
    assert store.download("big.bin", tmp_path / "back.bin").read_bytes() == payload


def test_s3_bad_credentials_are_named_without_the_secret(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-123")
    store = s3(s3_server, s3_server.make_bucket())
    with pytest.raises(StorageError) as info:
        store.check_writable()
    assert "not writable" in str(info.value) and "credentials" in str(info.value)
    assert "wrong-secret-value-123" not in str(info.value)


def test_relative_input_falls_back_to_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from framesift.jobs.context import load_context
    from tests.helpers import manifest, write_manifest

    (tmp_path / "work" / "clips").mkdir(parents=True)
    (tmp_path / "manifests").mkdir()
    run_file = write_manifest(tmp_path / "manifests" / "run.yaml", manifest("rel", "clips/", "out/"))
    monkeypatch.chdir(tmp_path / "work")
    assert load_context(run_file).base_dir == tmp_path / "work"  # clips/ exists only under the working folder
    (tmp_path / "manifests" / "clips").mkdir()
    assert load_context(run_file).base_dir == tmp_path / "manifests"  # next to the manifest wins


def test_custom_endpoint_defaults_to_path_style(s3_env) -> None:
    bucket = s3_env.make_bucket()
    store = open_storage(Location(uri=f"s3://{bucket}/data/"))  # endpoint only from AWS_ENDPOINT_URL
    store.write_bytes("a.txt", b"hi")
    assert [o.key for o in store.list()] == ["a.txt"]
    assert store.read_url("a.txt", 60).startswith(f"{s3_env.endpoint}/{bucket}/data/a.txt")
