"""What only object stores do: R2 buckets on S3, whole-object reads, S3's name limit.

Runs against moto's S3 server on 127.0.0.1 (see `conftest`); skipped without s3fs and moto.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from aifactory._exceptions import IntegrityError, NotFoundError, StorageError
from aifactory.models.enums import StorageScheme
from aifactory.models.storage_ref import StorageRef
from aifactory.storage import BlobStore, StorageConfig
from aifactory.storage._roots import open_root

from .conftest import all_files, overwrite, raw_fs

MIB = 1024 * 1024

Options = dict[str, dict[str, Any]]


def test_r2_bucket_on_its_own_s3_bucket_round_trips_a_large_blob(
    s3_options: Options, s3_bucket: Callable[[], str]
) -> None:
    main, media = s3_bucket(), s3_bucket()
    config = StorageConfig(
        f"s3://{main}/factory",
        r2_buckets={"media": f"s3://{media}/clips"},
        storage_options=s3_options,
    )
    store = BlobStore(config)
    data = secrets.token_bytes(25 * MIB + 1)
    ref = store.put(data, namespace="media", key="2026/clip.bin", media_type="video/mp4")
    kv_same_name = store.put(b"k" * 2000, namespace="media", key="2026/clip.bin")
    assert (ref.scheme, ref.size) == (StorageScheme.R2, len(data))
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert store.resolve_url(ref) == f"s3://{media}/clips/2026/clip.bin"
    assert all_files(f"s3://{media}/clips", s3_options) == ["2026/clip.bin"]
    assert all_files(config) == ["kv/media/2026/clip.bin"]
    assert store.get(ref) == data
    assert store.get(kv_same_name) == b"k" * 2000
    overwrite(store, ref, data[:-1])
    with pytest.raises(IntegrityError, match=r"r2://media/2026/clip.bin.*bytes"):
        store.get(ref)
    store.delete(ref)
    assert store.exists(ref) is False
    assert all_files(f"s3://{media}/clips", s3_options) == []


def test_a_read_is_one_whole_object_request(
    s3_options: Options, s3_bucket: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # s3fs would read objects above its block size in concurrent ranges after asking for the
    # size; an overwrite in between would mix two versions. A small block size shows it.
    options = {"s3": {**s3_options["s3"], "default_block_size": MIB}}
    store = BlobStore(StorageConfig(f"s3://{s3_bucket()}/f", storage_options=options))
    data = secrets.token_bytes(3 * MIB)
    ref = store.put(data, namespace="bkt", key="big", scheme=StorageScheme.R2)
    fs, _ = raw_fs(store.resolve_url(ref), options)
    calls: list[str] = []
    real_call = type(fs)._call_s3

    async def counted(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        return await real_call(self, method, *args, **kwargs)

    monkeypatch.setattr(type(fs), "_call_s3", counted)
    assert store.get(ref) == data
    assert calls == ["get_object"]


def test_key_too_long_for_s3_is_refused_before_any_request(
    s3_options: Options, s3_bucket: Callable[[], str]
) -> None:
    config = StorageConfig(f"s3://{s3_bucket()}/factory", storage_options=s3_options)
    store = BlobStore(config)
    # S3 names have at most 1024 bytes. "factory/kv/ns/" takes 14 of them; a KV key must also
    # leave room for its expiry record, "factory/kv/ns/.meta/{key}.json", 25 in all.
    kv_fits = "/".join(["s" * 249] * 4)
    assert len(f"factory/kv/ns/.meta/{kv_fits}.json") == 1024
    kv = store.put(b"f" * 2000, namespace="ns", key=kv_fits, ttl_s=60)
    assert store.get(kv) == b"f" * 2000
    kv_longer = kv_fits + "u"
    with pytest.raises(StorageError, match=r"too long.*1024 bytes, this one would have 1025"):
        store.put(b"l" * 2000, namespace="ns", key=kv_longer)
    with pytest.raises(StorageError, match="too long"):
        store.get(StorageRef.parse(f"kv://ns/{kv_longer}"))
    r2_fits = kv_fits + "/" + "r" * 9
    assert len(f"factory/r2/ns/{r2_fits}") == 1023
    r2 = store.put(b"r" * 2000, namespace="ns", key=r2_fits, scheme=StorageScheme.R2)
    assert store.get(r2) == b"r" * 2000
    with pytest.raises(StorageError, match="too long"):
        store.put(b"r" * 2000, namespace="ns", key=r2_fits + "rr", scheme=StorageScheme.R2)
    stored = [f"kv/ns/.meta/{kv_fits}.json", f"kv/ns/{kv_fits}", f"r2/ns/{r2_fits}"]
    assert all_files(config) == stored


def test_missing_bucket(s3_options: Options) -> None:
    absent = f"aifactory-absent-{secrets.token_hex(4)}"
    store = BlobStore(StorageConfig(f"s3://{absent}/f", storage_options=s3_options))
    with pytest.raises(StorageError, match="cannot write kv://ns/k"):
        store.put(b"x" * 2000, namespace="ns", key="k")
    ref = StorageRef.parse("kv://ns/k")
    with pytest.raises(NotFoundError):
        store.get(ref)
    assert store.exists(ref) is False


def test_object_stores_are_opened_without_a_listings_cache(s3_options: Options) -> None:
    options = {"s3": {**s3_options["s3"], "use_listings_cache": True}}
    root = open_root("s3://bucket/prefix", options)
    assert root.is_object_store
    assert root.fs.dircache.use_listings_cache is False
    assert options["s3"]["use_listings_cache"] is True
