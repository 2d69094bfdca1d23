"""Where namespaces and buckets live: overrides, protocols, options and confinement."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from aifactory._exceptions import BadInputError, StorageError, UnsafeKeyError
from aifactory.models.enums import StorageScheme
from aifactory.models.storage_ref import StorageRef
from aifactory.storage import BlobStore, StorageConfig
from aifactory.storage._roots import Root, open_root, redact

from .conftest import SMALL, all_files, raw_fs


@pytest.fixture
def without_s3fs(monkeypatch: pytest.MonkeyPatch) -> None:
    """As where the `s3` extra is not installed: s3fs unimportable, and unknown to fsspec."""
    monkeypatch.setitem(sys.modules, "s3fs", None)
    known = sys.modules["fsspec.registry"]._registry  # `fsspec.registry` names a mapping
    for protocol in ("s3", "s3a"):
        monkeypatch.delitem(known, protocol, raising=False)


def test_kv_namespace_override_moves_only_that_namespace(
    memory_root: Callable[[], str],
) -> None:
    main, special = memory_root(), memory_root()
    store = BlobStore(StorageConfig(main, kv_namespaces={"special": special}))
    moved = store.put(b"m" * 2000, namespace="special", key="a/b")
    stayed = store.put(b"s" * 2000, namespace="plain", key="a/b")
    assert store.resolve_url(moved) == f"{special}/a/b".replace("memory://", "memory:///")
    assert all_files(special) == ["a/b"]
    assert all_files(main) == ["kv/plain/a/b"]
    assert store.get(moved) == b"m" * 2000
    assert store.get(stayed) == b"s" * 2000


def test_r2_bucket_override_to_a_local_folder(
    memory_root: Callable[[], str], tmp_path: Path
) -> None:
    main = memory_root()
    config = StorageConfig(main, r2_buckets={"media": str(tmp_path / "media")}, placement=SMALL)
    store = BlobStore(config)
    ref = store.put(b"v" * 100, namespace="media", key="clip.bin")
    kv_same_name = store.put(b"k" * 10, namespace="media", key="clip.bin")
    assert ref.scheme is StorageScheme.R2
    assert (tmp_path / "media" / "clip.bin").read_bytes() == b"v" * 100
    assert all_files(main) == ["kv/media/clip.bin"]
    assert store.get(ref) == b"v" * 100
    assert store.get(kv_same_name) == b"k" * 10


@pytest.mark.usefixtures("without_s3fs")
def test_missing_protocol_names_what_to_install(memory_root: Callable[[], str]) -> None:
    remote = "s3://bucket/prefix"  # supported, so accepted; its implementation is missing
    store = BlobStore(StorageConfig(memory_root(), kv_namespaces={"remote": remote}))
    with pytest.raises(StorageError, match="install") as caught:
        store.put(b"x" * 2000, namespace="remote", key="k")
    assert isinstance(caught.value.__cause__, ImportError | ValueError)
    with pytest.raises(StorageError, match="install"):
        store.get(StorageRef.parse("kv://remote/k"))
    assert store.put(b"x" * 2000, namespace="local", key="k").scheme is StorageScheme.KV


def test_unknown_protocol_as_root() -> None:
    # Refused when the config is built (`tests/test_config.py` has the rest); a root opened
    # on one all the same fails when it is opened.
    with pytest.raises(BadInputError, match="unsupported storage protocol 'nosuchproto://'"):
        StorageConfig("nosuchproto://x")
    with pytest.raises(StorageError, match="nosuchproto"):
        open_root("nosuchproto://x", {})


def test_storage_options_reach_the_filesystem_of_their_protocol(
    memory_root: Callable[[], str],
) -> None:
    root = open_root(memory_root(), {"memory": {"marker": "m"}, "s3": {"endpoint_url": "x"}})
    assert root.fs.storage_options == {"marker": "m"}


def test_filesystem_root_is_not_a_namespace(memory_root: Callable[[], str]) -> None:
    store = BlobStore(StorageConfig(memory_root(), kv_namespaces={"all": "memory://"}))
    with pytest.raises(BadInputError, match="folder"):
        store.put(b"x" * 2000, namespace="all", key="other-bucket/secret")


def test_filesystems_are_opened_once_per_root(memory_root: Callable[[], str]) -> None:
    store = BlobStore(StorageConfig(memory_root()))
    for i in range(3):
        store.put(b"x" * 2000, namespace="ns", key=f"k{i}")
    store.put(b"x" * 2000, namespace="other", key="k")
    assert len(store._roots) == 2


def test_confinement_holds_even_if_key_validation_were_bypassed(
    memory_root: Callable[[], str],
) -> None:
    root = open_root(memory_root() + "/kv/ns", {})
    assert root.blob_path("a/b") == f"{root.base}/a/b"
    for escape in ("../other/x", "a/../../x", "/abs", "a//b", "./a"):
        with pytest.raises(UnsafeKeyError):
            Root._confined(root.base, escape)
        with pytest.raises(UnsafeKeyError):
            root.blob_path(escape)


def test_expiry_records_map_back_to_their_keys(memory_root: Callable[[], str]) -> None:
    root = open_root(memory_root(), {})
    assert root.key_of_meta(root.meta_path("a/b")) == "a/b"
    assert root.key_of_meta(f"{root.meta_base}/a/.tmp-0123") is None
    assert root.key_of_meta(f"{root.base}/a.json") is None


def test_credentials_are_kept_out_of_messages_and_reprs() -> None:
    assert redact("s3://key:secret@bucket/p") == "s3://***@bucket/p"
    assert "secret" not in repr(BlobStore(StorageConfig("s3://key:secret@bucket/p")))
    config = StorageConfig("s3://k:secret@b/p", r2_buckets={"m": "s3://k:secret@m"})
    assert "secret" not in repr(config)
    assert "s3://***@m" in repr(config)
    with pytest.raises(BadInputError) as refused:
        StorageConfig("nosuchproto://user:secret@host/p")
    assert "secret" not in refused.value.message
    with pytest.raises(StorageError) as caught:
        open_root("nosuchproto://user:secret@host/p", {})
    assert "secret" not in caught.value.message


def test_local_root_is_created_on_first_write(tmp_path: Path) -> None:
    config = StorageConfig.local(tmp_path / "deep" / "er")
    store = BlobStore(config)
    assert not (tmp_path / "deep").exists()
    ref = store.put(b"x" * 2000, namespace="ns", key="k")
    assert (tmp_path / "deep" / "er" / "kv" / "ns" / "k").is_file()
    fs, path = raw_fs(store.resolve_url(ref))
    assert path == str(tmp_path / "deep" / "er" / "kv" / "ns" / "k")
    assert fs.isfile(path)
