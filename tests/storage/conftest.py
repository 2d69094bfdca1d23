"""Fixtures for storage tests: every conformance test runs on `memory://` and on a local folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def raw_fs(url: str) -> tuple[Any, str]:
    """The filesystem and path behind an fsspec URL or local path."""
    fs, path = fsspec.core.url_to_fs(url)
    return fs, str(path)


def all_files(root: str) -> list[str]:
    """Every file below `root`, relative to it, sorted."""
    fs, base = raw_fs(root)
    base = base.rstrip("/")
    return sorted(str(p)[len(base) + 1 :] for p in fs.find(base))


def stored_bytes(store: BlobStore, ref: StorageRef) -> bytes:
    """What the filesystem holds for `ref`, bypassing the store."""
    fs, path = raw_fs(store.resolve_url(ref))
    return bytes(fs.cat_file(path))


def overwrite(store: BlobStore, ref: StorageRef, raw: bytes) -> None:
    """Replace what the filesystem holds for `ref`, bypassing the store."""
    fs, path = raw_fs(store.resolve_url(ref))
    fs.pipe_file(path, raw)


def _forget_memory(root: str) -> None:
    # fsspec's memory filesystem lives as long as the process; drop what a test left there.
    if root.startswith("memory://"):
        fs, base = raw_fs(root)
        if fs.exists(base):
            fs.rm(base, recursive=True)


@pytest.fixture(params=["memory", "local"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(backend: str, tmp_path: Path) -> Iterator[StorageConfig]:
    made = StorageConfig.memory("t") if backend == "memory" else StorageConfig.local(tmp_path / "s")
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
