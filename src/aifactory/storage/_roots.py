"""Namespace and bucket roots: an fsspec filesystem plus a base path keys are confined to."""

from __future__ import annotations

import inspect
import os
import posixpath
import re
import secrets
from typing import Any

import attrs
import fsspec.core  # type: ignore[import-untyped]
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]

from .._exceptions import BadInputError, StorageError, UnsafeKeyError
from ..models.storage_ref import check_key

__all__ = ["META_DIR", "SUPPORTED_PROTOCOLS", "Root", "check_protocol", "open_root", "redact"]

# Keys never start a segment with ".", so neither this folder nor temporary files can collide
# with a key.
META_DIR = ".meta"
_META_SUFFIX = ".json"
_TEMP_PREFIX = ".tmp-"
_USERINFO = re.compile(r"(://)[^/@]*@")
# Object stores: one PUT publishes a whole object or nothing, so writes need no temporary
# name (a copy and a delete on S3, which could leak the temporary object).
_OBJECT_STORES = frozenset({"s3", "s3a"})
# What the store relies on from an object store's filesystem, over the caller's options. A
# listings cache would answer `isfile` and `cat_file`'s size probe from a listing that another
# process has since changed (the store only lists to purge, and reads every object directly).
_OBJECT_STORE_OPTIONS: dict[str, Any] = {"use_listings_cache": False}
# S3 (and R2) refuse object names longer than this many UTF-8 bytes.
_S3_MAX_NAME_BYTES = 1024
#: The protocols a storage location may name; a location without one is a local folder.
#: Other fsspec filesystems (ftp, sftp, http, ...) lack what the store relies on (atomic
#: replacement, read-after-write), so they are refused when a config is built, not at the
#: first write of a large blob, which may be a whole pipeline later.
SUPPORTED_PROTOCOLS = ("file", "local", "memory", "s3", "s3a")
_SUPPORTED_TEXT = "a local folder, file://, memory:// or s3://bucket/prefix"


def redact(url: str) -> str:
    """`url` without any `user:password@` part, for error messages."""
    return _USERINFO.sub(r"\1***@", url)


def check_protocol(url: str, field: str = "storage") -> str | None:
    """The protocol of the storage location `url`, `None` for a local path.

    Raises `BadInputError` for a protocol aifactory does not support, naming those it does
    (`SUPPORTED_PROTOCOLS`); `field` says in its details which setting held `url`.
    """
    protocol: str | None = fsspec.core.split_protocol(url)[0]
    if protocol is None or protocol in SUPPORTED_PROTOCOLS:
        return protocol
    raise BadInputError(
        f"unsupported storage protocol '{protocol}://': use {_SUPPORTED_TEXT}",
        details={"field": field, "protocol": protocol, "supported": list(SUPPORTED_PROTOCOLS)},
    )


@attrs.frozen
class Root:
    """One KV namespace or R2 bucket on its filesystem.

    `base` is normalised and has no trailing slash; every path handed out lies strictly below
    it.
    """

    url: str
    fs: Any
    base: str

    @property
    def is_local(self) -> bool:
        """Local files need fsync and `os.replace` to make writes crash-safe."""
        return isinstance(self.fs, LocalFileSystem)

    @property
    def is_object_store(self) -> bool:
        """S3-like stores publish each PUT atomically and have no folders."""
        return _is_object_store(self.fs.protocol)

    def blob_path(self, key: str) -> str:
        """Where the blob `key` lives.

        Raises `UnsafeKeyError` if it would leave the root, and `StorageError` if the path is
        too long for an object store.
        """
        return self._fitting(self._confined(self.base, check_key(key)), key)

    def meta_path(self, key: str) -> str:
        """Where the expiry record of KV key `key` lives (`{base}/.meta/{key}.json`).

        Raises like `blob_path`.
        """
        path = self._confined(f"{self.base}/{META_DIR}", check_key(key)) + _META_SUFFIX
        return self._fitting(path, key)

    def read(self, path: str) -> bytes:
        """All bytes at `path`, raising what the filesystem raises.

        On object stores this is one GET: s3fs would otherwise ask for the size first and read
        a large object in concurrent ranges, which a concurrent overwrite can tear apart.
        """
        if self.is_object_store:
            return bytes(self.fs.cat_file(path, **_one_get(self.fs)))
        return bytes(self.fs.cat_file(path))

    @property
    def meta_base(self) -> str:
        """The folder holding all expiry records of this namespace."""
        return f"{self.base}/{META_DIR}"

    def key_of_meta(self, path: str) -> str | None:
        """The key an expiry record at `path` belongs to; `None` for anything else."""
        prefix = f"{self.meta_base}/"
        if not path.startswith(prefix) or not path.endswith(_META_SUFFIX):
            return None
        key = path[len(prefix) : -len(_META_SUFFIX)]
        try:
            return check_key(key)
        except UnsafeKeyError:
            return None

    @staticmethod
    def temp_path(final: str) -> str:
        """A fresh sibling of `final` to write into before the atomic rename."""
        return f"{posixpath.dirname(final)}/{_TEMP_PREFIX}{secrets.token_hex(8)}"

    def url_of(self, path: str) -> str:
        """The fsspec URL of `path` on this root's filesystem."""
        return str(self.fs.unstrip_protocol(path))

    def _fitting(self, path: str, key: str) -> str:
        # The bucket is the first segment; S3 limits the rest. Refused here, before any request,
        # rather than as the store's opaque error halfway through a put.
        if self.is_object_store:
            name = path.partition("/")[2]
            if len(name.encode()) > _S3_MAX_NAME_BYTES:
                raise StorageError(
                    f"storage key too long for {redact(self.url)}: object names are limited to "
                    f"{_S3_MAX_NAME_BYTES} bytes, this one would have {len(name.encode())}",
                    details={"key": key[:80]},
                )
        return path

    @staticmethod
    def _confined(base: str, key: str) -> str:
        # Defence in depth: check_key already forbids every escape, but should it ever let one
        # through, the joined path must still normalise to itself and stay below the base.
        path = f"{base}/{key}"
        if posixpath.normpath(path) != path or not path.startswith(f"{base}/"):
            raise UnsafeKeyError("storage key escapes its namespace", details={"key": key[:80]})
        return path


def open_root(url: str, storage_options: dict[str, dict[str, Any]]) -> Root:
    """Open the filesystem for `url` with the options for its protocol.

    Object stores (`s3://`) are opened without a listings cache, whatever the options say.

    Raises `StorageError` (with an install hint) if the protocol's implementation is missing
    or the filesystem cannot be created, and `BadInputError` if `url` names a filesystem root
    instead of a folder (keys there could address other buckets).
    """
    protocol = fsspec.core.split_protocol(url)[0] or "file"
    options = dict(storage_options.get(protocol, {}))
    if protocol in _OBJECT_STORES:
        options.update(_OBJECT_STORE_OPTIONS)
    shown = redact(url)
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise StorageError(
            f"cannot open storage at {shown}: {exc} (install the fsspec implementation for "
            f"'{protocol}://', e.g. `pip install s3fs` for s3://)",
            details={"protocol": protocol},
        ) from exc
    except (ValueError, TypeError, OSError) as exc:
        hint = (
            " (unknown protocol: install its fsspec implementation)"
            if "not known" in str(exc)
            else ""
        )
        raise StorageError(
            f"cannot open storage at {shown}: {exc}{hint}", details={"protocol": protocol}
        ) from exc
    base = _normalise(str(path))
    if not base.strip("/"):
        raise BadInputError(
            f"storage at {shown} must be a folder, not the root of its filesystem",
            details={"protocol": protocol},
        )
    return Root(url=url, fs=fs, base=base)


def _one_get(fs: Any) -> dict[str, Any]:
    """What makes `fs.cat_file` one GET on an object store: s3fs reads large objects in
    concurrent ranges unless told `max_concurrency=1`; versions before that (2026) read with
    one GET already and take no such argument. Worked out once per filesystem class."""
    kind = type(fs)
    found = _ONE_GET.get(kind)
    if found is None:
        try:
            takes = "max_concurrency" in inspect.signature(kind._cat_file).parameters
        except (AttributeError, TypeError, ValueError):
            takes = False
        found = {"max_concurrency": 1} if takes else {}
        _ONE_GET[kind] = found
    return found


_ONE_GET: dict[type, dict[str, Any]] = {}


def _is_object_store(protocol: str | tuple[str, ...]) -> bool:
    names = {protocol} if isinstance(protocol, str) else set(protocol)
    return not names.isdisjoint(_OBJECT_STORES)


def _normalise(path: str) -> str:
    # Windows drive paths come back as "C:/..." from fsspec, which posixpath handles as-is.
    normal = posixpath.normpath(path.replace(os.sep, "/")) if path else ""
    return normal.rstrip("/") if normal not in ("/", ".") else ""
