"""Fixtures for storage tests: every conformance test runs on `memory://`, on a local folder and
on S3 (moto's S3 server in this process, on 127.0.0.1; its fixtures `s3_endpoint`, `s3_options`
and `s3_bucket` live in `tests/conftest.py`)."""

from __future__ import annotations

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
