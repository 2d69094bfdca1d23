"""Encryption at rest of KV and R2 blobs: AES-256-GCM under operator keys. No I/O.

A sealed blob is a one-line header naming the key, then a fresh 96-bit nonce and the
ciphertext with its 128-bit tag:

```
aifenc/1 <key id>\\n<12-byte nonce><AES-256-GCM ciphertext + tag>
```

The header and the blob's reference (`kv://ns/key`, `r2://bucket/key`) are authenticated as
associated data, so a sealed blob cannot be renamed, moved to another key or re-labelled
without failing. What is sealed is exactly what an unencrypted store would write: for KV the
`aifkv` header and the (maybe gzipped) value, for R2 the bytes. References keep the
plaintext's size and sha256, which reads still verify after opening.

`StorageKey`s are configured on `StorageConfig.encryption_keys`: the first seals every new
blob, all of them open blobs sealed under their id (rotation: put a new key first, keep the
old ones while blobs sealed with them exist). Blobs stored without encryption stay readable.

Blobs sealed with a per-owner data key (`aifactory.storage.datakeys`) carry the header
`aifenc/2 <data key id>` (`DATA_KEY_MAGIC`) instead; the format is otherwise the same.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable, Mapping

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._exceptions import BadInputError, IntegrityError, StorageError

__all__ = [
    "DATA_KEY_MAGIC",
    "MAGIC",
    "StorageKey",
    "is_sealed",
    "open_blob",
    "parse_keys",
    "seal",
    "sealing_key",
]

MAGIC = b"aifenc/1 "
DATA_KEY_MAGIC = b"aifenc/2 "
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_NONCE_BYTES = 12
_MAX_HEADER = len(MAGIC) + 64 + 1


@attrs.frozen(repr=False)
class StorageKey:
    """One 256-bit key for blobs at rest, known by `key_id` (which is stored with each blob
    it seals, so that the right key opens it). Its text form is `id:<base64url secret>`;
    neither `repr` nor `str` shows the secret.

    Raises `BadInputError` for an id that is not 1-64 letters, digits, `.`, `_` or `-`
    (starting with a letter or digit), or a secret that is not 32 bytes.
    """

    key_id: str
    secret: bytes = attrs.field(eq=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise BadInputError(
                "a storage key id is 1-64 letters, digits, '.', '_' or '-'",
                details={"field": "key_id"},
            )
        if not isinstance(self.secret, bytes) or len(self.secret) != 32:
            raise BadInputError(
                "a storage key is 32 random bytes (AES-256)", details={"key_id": self.key_id}
            )

    @classmethod
    def generate(cls, key_id: str) -> StorageKey:
        """A new random key named `key_id`."""
        return cls(key_id, secrets.token_bytes(32))

    @classmethod
    def parse(cls, text: str) -> StorageKey:
        """A key from its text form `id:<base64url secret>`. Raises `BadInputError` without
        quoting the text (it is a secret)."""
        key_id, colon, encoded = text.strip().partition(":")
        try:
            secret = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            secret = b""
        if not colon:
            raise BadInputError("a storage key is written id:<base64url secret>")
        return cls(key_id, secret)

    def to_text(self) -> str:
        """`id:<base64url secret>`: what a key file or `AIFACTORY_STORAGE_KEY` holds."""
        return f"{self.key_id}:{base64.urlsafe_b64encode(self.secret).decode().rstrip('=')}"

    def __repr__(self) -> str:
        return f"StorageKey({self.key_id!r}, secret=***)"

    __str__ = __repr__


def parse_keys(text: str) -> tuple[StorageKey, ...]:
    """The keys in a key file or variable: one `id:secret` per line (or comma-separated);
    blank lines and `#` comments are skipped. The first seals new blobs. Raises
    `BadInputError` for a malformed key or two keys with one id."""
    keys = tuple(
        StorageKey.parse(item)
        for line in text.splitlines()
        for item in line.split("#", 1)[0].split(",")
        if item.strip()
    )
    ids = [k.key_id for k in keys]
    if len(set(ids)) != len(ids):
        raise BadInputError("two storage keys share an id", details={"key_ids": ids})
    return keys


def is_sealed(stored: bytes) -> bool:
    """Whether stored bytes carry a sealed-blob header (an operator key's or a data key's)."""
    return stored.startswith((MAGIC, DATA_KEY_MAGIC))


def sealing_key(stored: bytes, where: str) -> tuple[bytes, str]:
    """The header magic (`MAGIC` or `DATA_KEY_MAGIC`) and key id of the sealed blob `stored`
    at `where`. Raises `IntegrityError` when the header is malformed."""
    magic = DATA_KEY_MAGIC if stored.startswith(DATA_KEY_MAGIC) else MAGIC
    end = stored.find(b"\n", 0, _MAX_HEADER)
    key_id = stored[len(magic) : end].decode("ascii", "replace") if end > 0 else ""
    if not stored.startswith(magic) or end < 0 or not _KEY_ID.fullmatch(key_id):
        raise IntegrityError(f"{where}: sealed blob has a malformed header", details={"ref": where})
    return magic, key_id


def seal(data: bytes, key: StorageKey, where: str, *, magic: bytes = MAGIC) -> bytes:
    """`data` sealed with `key` for the blob at `where` (its reference's URI); `magic` is
    `DATA_KEY_MAGIC` when `key` is a data key."""
    header = magic + key.key_id.encode("ascii") + b"\n"
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return header + nonce + AESGCM(key.secret).encrypt(nonce, data, header + where.encode())


def open_blob(
    stored: bytes, keys: Iterable[StorageKey] | Mapping[str, StorageKey], where: str
) -> bytes:
    """The bytes sealed in `stored` for the blob at `where`.

    Raises `StorageError` when the blob names a key that is not configured (saying which),
    and `IntegrityError` when it is malformed or fails authentication: changed on disk,
    moved from another reference, or sealed with another key of the same id.
    """
    magic, key_id = sealing_key(stored, where)
    end = len(magic) + len(key_id)
    ring = keys if isinstance(keys, Mapping) else {k.key_id: k for k in keys}
    key = ring.get(key_id)
    if key is None:
        raise StorageError(
            f"{where} is encrypted with storage key {key_id!r}, which is not configured: give "
            "it in the storage keys (AIFACTORY_STORAGE_KEY or HOME/storage.keys)",
            details={"ref": where, "key_id": key_id},
        )
    header, body = stored[: end + 1], stored[end + 1 :]
    nonce, ciphertext = body[:_NONCE_BYTES], body[_NONCE_BYTES:]
    try:
        return AESGCM(key.secret).decrypt(nonce, ciphertext, header + where.encode())
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError(
            f"{where}: sealed blob fails authentication (changed at rest, moved, or sealed "
            f"with another key named {key_id!r})",
            details={"ref": where, "key_id": key_id},
        ) from exc
