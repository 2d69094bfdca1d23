"""Fixtures for storage tests: every conformance test runs on `memory://`, on a local folder and
on S3 (moto's S3 server in this process, on 127.0.0.1)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import fsspec.core  # type: ignore[import-untyped]
import pytest

from aifactory._clock import ManualClock
from aifactory.models.storage_ref import StorageRef
from aifactory.storage import BlobStore, PlacementPolicy, StorageConfig

SMALL = PlacementPolicy(inline_max_bytes=4, kv_max_bytes=64, gzip_min_bytes=32)
"""A policy with tiny limits, so the R2 boundary needs bytes, not 25 MiB."""

Options = Mapping[str, Mapping[str, Any]]


def raw_fs(url: str, storage_options: Options | None = None) -> tuple[Any, str]:
    """The filesystem and path behind an fsspec URL or local path, with the options for its
    protocol; on S3 without a listings cache, so it sees what others wrote."""
    protocol = fsspec.core.split_protocol(url)[0] or "file"
    options = dict((storage_options or {}).get(protocol, {}))
    if protocol == "s3":
        options["use_listings_cache"] = False
    fs, path = fsspec.core.url_to_fs(url, **options)
    return fs, str(path)


def foreign_store(config: StorageConfig, clock: ManualClock) -> BlobStore:
    """A store on the same storage as another process would open it: with filesystems of its
    own (fsspec shares one instance per set of options within a process)."""
    options = {
        protocol: {**values, "skip_instance_cache": True}
        for protocol, values in config.storage_options.items()
    }
    return BlobStore(attrs.evolve(config, storage_options=options), clock)


def all_files(where: str | StorageConfig, storage_options: Options | None = None) -> list[str]:
    """Every file below a root URL (or a config's root), relative to it, sorted."""
    if isinstance(where, StorageConfig):
        root, options = where.root, where.storage_options
    else:
        root, options = where, storage_options
    fs, base = raw_fs(root, options)
    base = base.rstrip("/")
    return sorted(str(p)[len(base) + 1 :] for p in fs.find(base))


def stored_bytes(store: BlobStore, ref: StorageRef) -> bytes:
    """What the filesystem holds for `ref`, bypassing the store."""
    fs, path = raw_fs(store.resolve_url(ref), store.config.storage_options)
    return bytes(fs.cat_file(path))


def overwrite(store: BlobStore, ref: StorageRef, raw: bytes) -> None:
    """Replace what the filesystem holds for `ref`, bypassing the store."""
    fs, path = raw_fs(store.resolve_url(ref), store.config.storage_options)
    fs.pipe_file(path, raw)


def _forget_memory(root: str) -> None:
    # fsspec's memory filesystem lives as long as the process; drop what a test left there.
    if root.startswith("memory://"):
        fs, base = raw_fs(root)
        if fs.exists(base):
            fs.rm(base, recursive=True)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of an S3 API (moto) on 127.0.0.1, shared by the session.

    Skips, saying why, where s3fs or moto's server is not installed.
    """
    try:
        import s3fs  # type: ignore[import-untyped]  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"the s3 backend needs s3fs and moto[server] (pip install -e '.[dev]'): {exc}")

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_options(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, dict[str, Any]]:
    """Storage options reaching the moto server, with dummy credentials for this test only.

    Nothing may fall back to a real AWS endpoint, the instance metadata service or a
    developer's own AWS profile: a client opened without the options is sent to a closed port
    on 127.0.0.1 and fails there.
    """
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return {"s3": {"endpoint_url": s3_endpoint}}


@pytest.fixture
def s3_bucket(s3_options: dict[str, dict[str, Any]]) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty buckets on the moto server and empties them afterwards."""
    fs, _ = raw_fs("s3://", s3_options)
    made: list[str] = []

    def make() -> str:
        bucket = f"aifactory-{secrets.token_hex(6)}"
        fs.mkdir(bucket)
        made.append(bucket)
        return bucket

    yield make
    for bucket in made:
        fs.rm(bucket, recursive=True)


@pytest.fixture(params=["memory", "local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StorageConfig]:
    if backend == "s3":
        # Only the s3 runs start moto.
        options = request.getfixturevalue("s3_options")
        bucket = request.getfixturevalue("s3_bucket")()
        made = StorageConfig(f"s3://{bucket}/factory", storage_options=options)
    elif backend == "memory":
        made = StorageConfig.memory("t")
    else:
        made = StorageConfig.local(tmp_path / "s")
    yield made
    _forget_memory(made.root)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(config: StorageConfig, clock: ManualClock) -> BlobStore:
    return BlobStore(config, clock)


@pytest.fixture
def small_store(config: StorageConfig, clock: ManualClock) -> BlobStore:
    return BlobStore(attrs.evolve(config, placement=SMALL), clock)


@pytest.fixture
def memory_root() -> Iterator[Callable[[], str]]:
    """Makes extra unique `memory://` roots and forgets them afterwards."""
    made: list[str] = []

    def make() -> str:
        root = StorageConfig.memory("extra").root
        made.append(root)
        return root

    yield make
    for root in made:
        _forget_memory(root)
