"""Namespace and bucket roots: an fsspec filesystem plus a base path keys are confined to."""

from __future__ import annotations

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

__all__ = ["META_DIR", "Root", "open_root", "redact"]

# Keys never start a segment with ".", so neither this folder nor temporary files can collide
# with a key.
META_DIR = ".meta"
_META_SUFFIX = ".json"
_TEMP_PREFIX = ".tmp-"
_USERINFO = re.compile(r"(://)[^/@]*@")


def redact(url: str) -> str:
    """`url` without any `user:password@` part, for error messages."""
    return _USERINFO.sub(r"\1***@", url)


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

    def blob_path(self, key: str) -> str:
        """Where the blob `key` lives. Raises `UnsafeKeyError` if it would leave the root."""
        return self._confined(self.base, check_key(key))

    def meta_path(self, key: str) -> str:
        """Where the expiry record of KV key `key` lives (`{base}/.meta/{key}.json`)."""
        return self._confined(f"{self.base}/{META_DIR}", check_key(key)) + _META_SUFFIX

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

    Raises `StorageError` (with an install hint) if the protocol's implementation is missing
    or the filesystem cannot be created, and `BadInputError` if `url` names a filesystem root
    instead of a folder (keys there could address other buckets).
    """
    protocol = fsspec.core.split_protocol(url)[0] or "file"
    options = storage_options.get(protocol, {})
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


def _normalise(path: str) -> str:
    # Windows drive paths come back as "C:/..." from fsspec, which posixpath handles as-is.
    normal = posixpath.normpath(path.replace(os.sep, "/")) if path else ""
    return normal.rstrip("/") if normal not in ("/", ".") else ""
