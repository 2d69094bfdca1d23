"""What every storage backend must do: run on `memory://`, on a local folder and on S3."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from typing import Any

import attrs
import pytest

from aifactory._clock import ManualClock
from aifactory._exceptions import (
    BadInputError,
    IntegrityError,
    NotFoundError,
    StorageError,
    UnsafeKeyError,
)
from aifactory.models.enums import StorageScheme
from aifactory.models.storage_ref import StorageRef
from aifactory.storage import BlobStore, StorageConfig
from aifactory.storage._values import decode_kv

from .conftest import all_files, foreign_store, overwrite, raw_fs, stored_bytes

GZIP_MIN = 10 * 1024


class TestPlacement:
    def test_just_below_inline_limit_travels_inline_and_writes_nothing(
        self, store: BlobStore, config: StorageConfig
    ) -> None:
        data = secrets.token_bytes(1023)
        ref = store.put(data, namespace="ns", key="small")
        assert ref.scheme is StorageScheme.INLINE
        assert ref.data == data
        assert ref.size == 1023
        assert ref.sha256 == hashlib.sha256(data).hexdigest()
        assert store.get(ref) == data
        assert all_files(config) == []

    def test_inline_limit_goes_to_kv(self, store: BlobStore, config: StorageConfig) -> None:
        data = secrets.token_bytes(1024)
        ref = store.put(data, namespace="ns", key="a/b", media_type="text/plain")
        assert (ref.scheme, ref.namespace, ref.key) == (StorageScheme.KV, "ns", "a/b")
        assert (ref.size, ref.sha256) == (1024, hashlib.sha256(data).hexdigest())
        assert ref.media_type == "text/plain"
        assert ref.data is None
        assert store.get(ref) == data
        assert all_files(config) == ["kv/ns/a/b"]

    def test_kv_limit_is_inclusive_and_above_goes_to_r2(
        self, small_store: BlobStore, config: StorageConfig
    ) -> None:
        at_limit = small_store.put(b"k" * 64, namespace="ns", key="at")
        above = small_store.put(b"r" * 65, namespace="ns", key="above")
        assert at_limit.scheme is StorageScheme.KV
        assert above.scheme is StorageScheme.R2
        assert small_store.get(at_limit) == b"k" * 64
        assert small_store.get(above) == b"r" * 65
        assert all_files(config) == ["kv/ns/at", "r2/ns/above"]

    def test_r2_objects_are_stored_verbatim(self, small_store: BlobStore) -> None:
        data = secrets.token_bytes(100)
        ref = small_store.put(data, namespace="bucket", key="obj")
        assert stored_bytes(small_store, ref) == data

    @pytest.mark.parametrize("scheme", list(StorageScheme))
    def test_scheme_can_be_forced(self, store: BlobStore, scheme: StorageScheme) -> None:
        data = b"forced" * 300
        ref = store.put(data, namespace="ns", key="forced", scheme=scheme)
        assert ref.scheme is scheme
        assert store.get(ref) == data

    def test_resolve_url_maps_kv_and_r2_under_the_root(
        self, store: BlobStore, config: StorageConfig
    ) -> None:
        kv = StorageRef.parse("kv://ns/a/b")
        r2 = StorageRef.parse("r2://bkt/c")
        _, base = raw_fs(config.root, config.storage_options)
        assert raw_fs(store.resolve_url(kv), config.storage_options)[1] == f"{base}/kv/ns/a/b"
        assert raw_fs(store.resolve_url(r2), config.storage_options)[1] == f"{base}/r2/bkt/c"
        with pytest.raises(BadInputError):
            store.resolve_url(StorageRef.inline(b"x"))


class TestCompression:
    def test_large_kv_values_are_gzipped_and_read_back_transparently(
        self, store: BlobStore
    ) -> None:
        data = b"compressible line\n" * (GZIP_MIN // 18 + 1)
        ref = store.put(data, namespace="ns", key="big")
        raw = stored_bytes(store, ref)
        assert raw.startswith(b"aifkv/1 gzip\n")
        assert len(raw) < len(data) // 10
        assert (ref.size, ref.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert store.get(ref) == data

    def test_gzip_starts_exactly_at_the_threshold(self, store: BlobStore) -> None:
        below = store.put(b"b" * (GZIP_MIN - 1), namespace="ns", key="below")
        at = store.put(b"a" * GZIP_MIN, namespace="ns", key="at")
        assert stored_bytes(store, below) == b"aifkv/1 identity\n" + b"b" * (GZIP_MIN - 1)
        assert stored_bytes(store, at).startswith(b"aifkv/1 gzip\n")
        assert store.get(below) == b"b" * (GZIP_MIN - 1)
        assert store.get(at) == b"a" * GZIP_MIN

    def test_incompressible_data_round_trips(self, store: BlobStore) -> None:
        data = secrets.token_bytes(GZIP_MIN * 3)
        ref = store.put(data, namespace="ns", key="noise")
        assert store.get(ref) == data


class TestIntegrity:
    def test_tampered_kv_value_is_rejected(self, store: BlobStore) -> None:
        ref = store.put(b"x" * 2000, namespace="ns", key="t")
        overwrite(store, ref, b"aifkv/1 identity\n" + b"y" * 2000)
        with pytest.raises(IntegrityError, match="kv://ns/t") as caught:
            store.get(ref)
        assert caught.value.details["ref"] == "kv://ns/t"
        assert "sha256" in caught.value.message

    def test_truncated_r2_object_is_rejected_by_size(self, small_store: BlobStore) -> None:
        ref = small_store.put(b"z" * 100, namespace="bkt", key="t")
        overwrite(small_store, ref, b"z" * 99)
        with pytest.raises(IntegrityError, match=r"r2://bkt/t.*99 bytes"):
            small_store.get(ref)

    def test_tampered_gzip_stream_is_rejected(self, store: BlobStore) -> None:
        ref = store.put(b"q" * (GZIP_MIN * 2), namespace="ns", key="gz")
        raw = bytearray(stored_bytes(store, ref))
        raw[len(raw) // 2] ^= 0xFF
        overwrite(store, ref, bytes(raw))
        with pytest.raises(IntegrityError, match="kv://ns/gz"):
            store.get(ref)

    def test_value_without_header_is_rejected(self, store: BlobStore) -> None:
        ref = store.put(b"h" * 2000, namespace="ns", key="hdr")
        overwrite(store, ref, b"h" * 2000)
        with pytest.raises(IntegrityError, match="header"):
            store.get(ref)

    def test_gzip_value_cannot_inflate_past_the_promised_size(self, store: BlobStore) -> None:
        ref = store.put(b"0" * (GZIP_MIN * 100), namespace="ns", key="bomb")
        small_claim = attrs.evolve(ref, size=GZIP_MIN, sha256="")
        with pytest.raises(IntegrityError, match="inflates beyond"):
            store.get(small_claim)

    def test_reference_with_wrong_sha256_is_rejected(self, store: BlobStore) -> None:
        ref = store.put(b"s" * 2000, namespace="ns", key="sha")
        with pytest.raises(IntegrityError):
            store.get(attrs.evolve(ref, sha256="0" * 64))

    def test_bare_reference_reads_without_checks(self, store: BlobStore) -> None:
        ref = store.put(b"s" * 2000, namespace="ns", key="bare")
        assert store.get(StorageRef.parse(ref.uri)) == b"s" * 2000

    def test_inline_data_is_verified(self, store: BlobStore) -> None:
        forged = StorageRef(
            StorageScheme.INLINE, data=b"evil", size=4, sha256=hashlib.sha256(b"good").hexdigest()
        )
        with pytest.raises(IntegrityError, match="inline:"):
            store.get(forged)


class TestMissing:
    @pytest.mark.parametrize("uri", ["kv://ns/never", "r2://bkt/never", "kv://other/a/b/c"])
    def test_missing_blob(self, store: BlobStore, uri: str) -> None:
        ref = StorageRef.parse(uri)
        with pytest.raises(NotFoundError, match=uri):
            store.get(ref)
        assert store.exists(ref) is False
        store.delete(ref)

    def test_folder_at_the_key_is_not_a_blob(self, store: BlobStore) -> None:
        store.put(b"d" * 2000, namespace="ns", key="dir/child")
        parent = StorageRef.parse("kv://ns/dir")
        with pytest.raises(NotFoundError):
            store.get(parent)
        assert store.exists(parent) is False
        store.delete(parent)
        assert store.get(StorageRef.parse("kv://ns/dir/child")) == b"d" * 2000

    @pytest.mark.parametrize("size", [2, 10, 100])
    def test_delete_is_idempotent(self, small_store: BlobStore, size: int) -> None:
        ref = small_store.put(b"d" * size, namespace="ns", key="gone", ttl_s=None)
        assert small_store.exists(ref)
        small_store.delete(ref)
        small_store.delete(ref)
        if ref.scheme is StorageScheme.INLINE:
            assert small_store.get(ref) == b"d" * size
        else:
            assert small_store.exists(ref) is False
            with pytest.raises(NotFoundError):
                small_store.get(ref)


class TestExpiry:
    def test_entry_expires_exactly_at_its_ttl(self, store: BlobStore, clock: ManualClock) -> None:
        ref = store.put(b"e" * 2000, namespace="cache", key="k", ttl_s=60)
        clock.advance(59.999)
        assert store.get(ref) == b"e" * 2000
        assert store.exists(ref)
        clock.advance(0.001)
        assert store.exists(ref) is False
        with pytest.raises(NotFoundError, match="expired"):
            store.get(ref)

    def test_gzipped_entry_with_ttl(self, store: BlobStore, clock: ManualClock) -> None:
        ref = store.put(b"g" * GZIP_MIN, namespace="cache", key="gz", ttl_s=5)
        assert store.get(ref) == b"g" * GZIP_MIN
        clock.advance(5)
        with pytest.raises(NotFoundError):
            store.get(ref)

    def test_rewrite_without_ttl_clears_the_expiry(
        self, store: BlobStore, clock: ManualClock, config: StorageConfig
    ) -> None:
        store.put(b"1" * 2000, namespace="cache", key="k", ttl_s=10)
        assert "kv/cache/.meta/k.json" in all_files(config)
        ref = store.put(b"2" * 2000, namespace="cache", key="k")
        clock.advance(3600)
        assert store.get(ref) == b"2" * 2000
        assert all_files(config) == ["kv/cache/k"]

    def test_purge_removes_only_expired_entries(
        self, store: BlobStore, clock: ManualClock, config: StorageConfig
    ) -> None:
        short = [store.put(b"s" * 2000, namespace="c", key=f"s/{i}", ttl_s=10) for i in range(2)]
        long = store.put(b"l" * 2000, namespace="c", key="long", ttl_s=100)
        forever = store.put(b"f" * 2000, namespace="c", key="forever")
        other = store.put(b"o" * 2000, namespace="other", key="x", ttl_s=10)
        clock.advance(10)
        assert store.purge_expired("c") == 2
        assert store.purge_expired("c") == 0
        assert not any(store.exists(ref) for ref in short)
        assert store.get(long) == b"l" * 2000
        assert store.get(forever) == b"f" * 2000
        assert "kv/other/x" in all_files(config)
        assert [f for f in all_files(config) if "/c/" in f] == [
            "kv/c/.meta/long.json",
            "kv/c/forever",
            "kv/c/long",
        ]
        assert other.key == "x"

    def test_purge_of_an_unknown_namespace_finds_nothing(self, store: BlobStore) -> None:
        assert store.purge_expired("nothing-here") == 0

    def test_malformed_expiry_record(
        self, store: BlobStore, clock: ManualClock, config: StorageConfig
    ) -> None:
        ref = store.put(b"m" * 2000, namespace="c", key="m", ttl_s=1)
        fs, base = raw_fs(config.root, config.storage_options)
        fs.pipe_file(f"{base}/kv/c/.meta/m.json", b"{not json")
        clock.advance(2)
        assert store.purge_expired("c") == 0
        with pytest.raises(StorageError, match="malformed"):
            store.get(ref)

    @pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), True])
    def test_invalid_ttl(self, store: BlobStore, ttl: Any) -> None:
        with pytest.raises(BadInputError, match="ttl_s"):
            store.put(b"t" * 2000, namespace="c", key="k", ttl_s=ttl)

    def test_ttl_is_refused_for_r2(self, small_store: BlobStore, config: StorageConfig) -> None:
        with pytest.raises(BadInputError, match="TTL"):
            small_store.put(b"r" * 100, namespace="c", key="k", ttl_s=10)
        with pytest.raises(BadInputError, match="TTL"):
            small_store.put(b"r", namespace="c", key="k", ttl_s=10, scheme=StorageScheme.R2)
        assert all_files(config) == []

    def test_inline_data_ignores_ttl(self, store: BlobStore, clock: ManualClock) -> None:
        ref = store.put(b"tiny", namespace="c", key="k", ttl_s=1)
        clock.advance(10)
        assert ref.scheme is StorageScheme.INLINE
        assert store.get(ref) == b"tiny"


class TestValidation:
    @pytest.mark.parametrize("key", ["../x", "/abs", "a/../../b", "file://x", "a\\b", ".hidden"])
    def test_unsafe_key_is_refused_even_for_inline_data(
        self, store: BlobStore, key: str, config: StorageConfig
    ) -> None:
        for size in (1, 2000):
            with pytest.raises(UnsafeKeyError):
                store.put(b"u" * size, namespace="ns", key=key)
        assert all_files(config) == []

    @pytest.mark.parametrize("namespace", ["", "UP", "a/b", "..", "s3:"])
    def test_bad_namespace_is_refused(self, store: BlobStore, namespace: str) -> None:
        with pytest.raises(UnsafeKeyError):
            store.put(b"u" * 2000, namespace=namespace, key="k")
        with pytest.raises(UnsafeKeyError):
            store.purge_expired(namespace)

    def test_data_must_be_bytes(self, store: BlobStore) -> None:
        with pytest.raises(BadInputError, match="bytes"):
            store.put("text", namespace="ns", key="k")  # type: ignore[arg-type]
        ref = store.put(bytearray(b"b" * 2000), namespace="ns", key="k")  # type: ignore[arg-type]
        assert store.get(ref) == b"b" * 2000


class TestAtomicWrites:
    def test_no_temporary_files_remain(self, small_store: BlobStore, config: StorageConfig) -> None:
        small_store.put(b"k" * 10, namespace="ns", key="a/kv")
        small_store.put(b"k" * 40, namespace="ns", key="a/kv", ttl_s=5)
        small_store.put(b"r" * 100, namespace="ns", key="a/r2")
        assert all_files(config) == ["kv/ns/.meta/a/kv.json", "kv/ns/a/kv", "r2/ns/a/r2"]

    def test_interrupted_write_keeps_the_old_value(
        self,
        store: BlobStore,
        config: StorageConfig,
        backend: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        old = store.put(b"old" * 1000, namespace="ns", key="k")
        seen_mid_write: list[bytes] = []
        fs, path = raw_fs(store.resolve_url(old), config.storage_options)

        def crash(*args: Any, **kwargs: Any) -> None:
            seen_mid_write.append(BlobStore(config).get(old))
            raise KeyboardInterrupt

        if backend == "s3":
            # Nothing can be interrupted inside s3fs's event loop without killing it; what
            # happens there is a connection lost while the value is being uploaded.
            real_call = type(fs)._call_s3
            expected: type[BaseException] = StorageError

            async def lost(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
                if method == "put_object" and kwargs.get("Key", "").endswith("/k"):
                    seen_mid_write.append(decode_kv(await fs._cat_file(path), old))
                    raise ConnectionResetError("connection lost during the upload")
                return await real_call(self, method, *args, **kwargs)

            monkeypatch.setattr(type(fs), "_call_s3", lost)
        else:
            expected = KeyboardInterrupt
            if backend == "local":
                monkeypatch.setattr(os, "replace", crash)
            else:
                monkeypatch.setattr(type(fs), "mv", crash)
        with pytest.raises(expected):
            store.put(b"new" * 1000, namespace="ns", key="k")
        monkeypatch.undo()
        assert seen_mid_write == [b"old" * 1000]
        assert store.get(old) == b"old" * 1000
        assert all_files(config) == ["kv/ns/k"]

    def test_clashing_write_fails_cleanly_where_folders_exist(
        self, store: BlobStore, config: StorageConfig, backend: str
    ) -> None:
        blob = store.put(b"f" * 2000, namespace="ns", key="a")
        if backend == "s3":
            # Object stores have no folders: `a` and `a/b` are two independent names.
            below = store.put(b"g" * 2000, namespace="ns", key="a/b")
            assert store.get(below) == b"g" * 2000
            assert store.exists(blob)
            assert all_files(config) == ["kv/ns/a", "kv/ns/a/b"]
        else:
            with pytest.raises(StorageError, match="kv://ns/a/b"):
                store.put(b"g" * 2000, namespace="ns", key="a/b")
            assert all_files(config) == ["kv/ns/a"]
        assert store.get(blob) == b"f" * 2000

    def test_concurrent_writers_never_expose_partial_values(self, store: BlobStore) -> None:
        values = [bytes([65 + i]) * (GZIP_MIN + 1000 * i) for i in range(4)]
        refs = [store.put(v, namespace="ns", key="hot") for v in values]
        bare = StorageRef.parse("kv://ns/hot")
        errors: list[BaseException] = []
        seen: set[bytes] = set()

        def write(value: bytes) -> None:
            for _ in range(30):
                store.put(value, namespace="ns", key="hot")

        def read() -> None:
            for _ in range(60):
                try:
                    seen.add(store.get(bare))
                except BaseException as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=write, args=(v,)) for v in values]
        threads += [threading.Thread(target=read) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert seen <= set(values)
        final = store.get(bare)
        assert [store.get(ref) for ref in refs if ref.sha256 == hashlib.sha256(final).hexdigest()]


class TestOtherProcesses:
    """Another process sharing the storage: its writes and deletes count at once."""

    def test_writes_and_deletes_of_another_process_are_seen_at_once(
        self, store: BlobStore, config: StorageConfig, clock: ManualClock
    ) -> None:
        other = foreign_store(config, clock)
        mine = store.put(b"m" * 2000, namespace="c", key="mine", ttl_s=100)
        # Listing the expiry records must not make this store blind to later changes there.
        assert store.purge_expired("c") == 0
        theirs = other.put(b"t" * 2000, namespace="c", key="theirs", ttl_s=10)
        assert store.exists(theirs)
        assert store.get(theirs) == b"t" * 2000
        clock.advance(10)
        assert store.exists(theirs) is False
        with pytest.raises(NotFoundError, match="expired"):
            store.get(theirs)
        other.delete(mine)
        assert store.exists(mine) is False
        with pytest.raises(NotFoundError):
            store.get(mine)
        assert store.purge_expired("c") == 1
        assert other.exists(theirs) is False
        assert all_files(config) == []

    def test_overwrite_by_another_process_is_read_whole(
        self, store: BlobStore, config: StorageConfig, clock: ManualClock
    ) -> None:
        first = store.put(b"1" * 3000, namespace="ns", key="k")
        assert store.get(first) == b"1" * 3000
        second = foreign_store(config, clock).put(b"2" * 5000, namespace="ns", key="k")
        assert store.get(second) == b"2" * 5000
        with pytest.raises(IntegrityError):
            store.get(first)


class TestKeys:
    @pytest.mark.parametrize("key", ["a=b+c@d,e", "x+y/1,2@3=4", "deep/er/key.with.dots"])
    def test_every_allowed_character_round_trips(
        self, small_store: BlobStore, config: StorageConfig, key: str
    ) -> None:
        kv = small_store.put(b"k" * 40, namespace="ns", key=key, ttl_s=60)
        r2 = small_store.put(b"r" * 100, namespace="ns", key=key)
        assert small_store.get(kv) == b"k" * 40
        assert small_store.get(r2) == b"r" * 100
        assert small_store.exists(kv)
        assert small_store.exists(r2)
        expected = sorted([f"kv/ns/.meta/{key}.json", f"kv/ns/{key}", f"r2/ns/{key}"])
        assert all_files(config) == expected
        assert stored_bytes(small_store, r2) == b"r" * 100
        small_store.delete(kv)
        small_store.delete(r2)
        assert all_files(config) == []
