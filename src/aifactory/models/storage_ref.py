"""`StorageRef`: where a blob lives, how big it is and what its sha256 is.

Pure parsing and formatting; the `storage` package resolves references to bytes.

Text form: `kv://namespace/key/with/segments`, `r2://bucket/path`, or `inline:` (the bytes
travel inside the reference itself). Keys are confined to their namespace: no `..` or `.`
segments, no hidden (`.x`) segments, no absolute paths, no backslashes, NUL or control
characters, no `://` (another fsspec protocol smuggled in).
"""

from __future__ import annotations

import hashlib
import re

import attrs

from .._exceptions import BadInputError, UnsafeKeyError
from ._display import enum_repr, short_digest_repr
from .enums import StorageScheme

__all__ = ["StorageRef", "check_key", "check_namespace"]

_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# At most 250 characters, so `<segment>.json` (expiry metadata) still fits a 255-byte file name.
_SEGMENT = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-=+@,]{0,249}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_KEY_LENGTH = 1024


def check_namespace(name: str) -> str:
    """Return `name` if it is a valid KV namespace or R2 bucket name.

    Raises `UnsafeKeyError` otherwise.
    """
    if not isinstance(name, str) or not _NAMESPACE.fullmatch(name):
        raise UnsafeKeyError(
            "namespace or bucket names are 1-63 characters of a-z, 0-9, '_' and '-'",
            details={"namespace": repr(name)[:80]},
        )
    return name


def check_key(key: str) -> str:
    """Return `key` if it stays inside its namespace.

    A key is one or more `/`-separated segments; each starts with a letter, digit, `_` or `-`
    (so never `.` or `..`) and uses only `A-Za-z0-9_.-=+@,`. Raises `UnsafeKeyError`.
    """
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise UnsafeKeyError(
            "storage key must be 1-1024 characters", details={"key": repr(key)[:80]}
        )
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise UnsafeKeyError(
                "storage key segments are 1-250 characters, must not start with '.', and may use "
                "only letters, digits and _ . - = + @ ,",
                details={"key": repr(key)[:80]},
            )
    return key


@attrs.frozen
class StorageRef:
    """A reference to a blob: scheme, namespace (KV) or bucket (R2), key, size and sha256.

    For `inline` references `data` holds the bytes and `namespace`/`key` are empty.
    """

    scheme: StorageScheme = attrs.field(repr=enum_repr)
    namespace: str = ""
    key: str = ""
    size: int = 0
    sha256: str = attrs.field(default="", repr=short_digest_repr)
    data: bytes | None = attrs.field(default=None, repr=False)
    media_type: str = "application/octet-stream"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 0:
            raise BadInputError("a storage reference's size is a non-negative integer")
        if self.sha256 and not _SHA256.fullmatch(self.sha256):
            raise BadInputError("a storage reference's sha256 is 64 lowercase hex digits")
        if self.scheme is StorageScheme.INLINE:
            if self.data is None or self.namespace or self.key:
                raise UnsafeKeyError("an inline reference carries data and no namespace or key")
        else:
            check_namespace(self.namespace)
            check_key(self.key)
            if self.data is not None:
                raise UnsafeKeyError("only inline references carry data")

    @classmethod
    def inline(cls, data: bytes, media_type: str = "application/octet-stream") -> StorageRef:
        """An inline reference holding `data`."""
        return cls(
            StorageScheme.INLINE,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            data=bytes(data),
            media_type=media_type,
        )

    @property
    def uri(self) -> str:
        """The text form: `kv://ns/key`, `r2://bucket/key` or `inline:`."""
        if self.scheme is StorageScheme.INLINE:
            return "inline:"
        return f"{self.scheme.value}://{self.namespace}/{self.key}"

    @classmethod
    def parse(cls, uri: str, *, size: int = 0, sha256: str = "") -> StorageRef:
        """Parse `kv://ns/key` or `r2://bucket/key` (inline references have no text form).

        Raises `UnsafeKeyError` for any other scheme or an unsafe namespace or key.
        """
        if not isinstance(uri, str):
            raise UnsafeKeyError("a storage reference is a string")
        scheme_text, sep, rest = uri.partition("://")
        if not sep or scheme_text not in (StorageScheme.KV.value, StorageScheme.R2.value):
            raise UnsafeKeyError(
                "storage references start with kv:// or r2://", details={"ref": uri[:80]}
            )
        namespace, slash, key = rest.partition("/")
        if not slash:
            raise UnsafeKeyError("storage reference lacks a key", details={"ref": uri[:80]})
        return cls(StorageScheme(scheme_text), namespace, key, size=size, sha256=sha256)

    def __str__(self) -> str:
        return self.uri
