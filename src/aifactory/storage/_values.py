"""How KV values and their metadata look on disk, and how read bytes are checked. No I/O.

A stored KV value is a one-line header followed by the payload:

```
aifkv/1 identity\\n<the bytes>
aifkv/1 gzip\\n<the bytes, gzip-compressed>
```

The encoding travels inside the value (not in a side file) so that one atomic rename publishes
bytes and encoding together: a reader can never pair new bytes with an old encoding. R2 objects
carry no header; they are stored exactly as given.

Expiry lives in a side file (see `BlobStore`) as JSON:
`{"expires_at": "<ISO 8601 UTC>", "encoding": "gzip" | "identity", "media_type": "..."}`.
Its `encoding` is informational; the header is authoritative.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from datetime import datetime
from typing import Any, Literal

import attrs

from .._clock import utc
from .._exceptions import IntegrityError, StorageError
from ..models.storage_ref import StorageRef

__all__ = ["Encoding", "Expiry", "decode_kv", "encode_kv", "verify"]

Encoding = Literal["identity", "gzip"]

_MAGIC = b"aifkv/1 "
_HEADERS: dict[bytes, Encoding] = {b"identity": "identity", b"gzip": "gzip"}
_MAX_HEADER = len(_MAGIC) + max(len(name) for name in _HEADERS) + 1
# Level 6 is zlib's default: most of level 9's ratio at a fraction of its time on 25 MiB values.
_GZIP_LEVEL = 6


def encode_kv(data: bytes, encoding: Encoding) -> bytes:
    """The stored form of `data` under `encoding`."""
    body = gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0) if encoding == "gzip" else data
    return _MAGIC + encoding.encode("ascii") + b"\n" + body


def decode_kv(stored: bytes, ref: StorageRef) -> bytes:
    """The original bytes of a stored KV value.

    When `ref.size` is known, decompression stops one byte past it, so a hostile or corrupt
    value cannot inflate into gigabytes before the size check rejects it.
    Raises `IntegrityError` for a value without a valid header or with a broken gzip stream.
    """
    end = stored.find(b"\n", 0, _MAX_HEADER)
    if not stored.startswith(_MAGIC) or end < 0:
        raise IntegrityError(
            f"{ref.uri}: stored value has no aifkv header", details={"ref": ref.uri}
        )
    encoding = _HEADERS.get(stored[len(_MAGIC) : end])
    if encoding is None:
        raise IntegrityError(
            f"{ref.uri}: stored value has an unknown encoding",
            details={
                "ref": ref.uri,
                "encoding": stored[len(_MAGIC) : end].decode("ascii", "replace"),
            },
        )
    body = stored[end + 1 :]
    if encoding == "identity":
        return body
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, ref.size + 1 if ref.size > 0 else 0)
    except zlib.error as exc:
        raise IntegrityError(
            f"{ref.uri}: stored gzip stream is corrupt", details={"ref": ref.uri}
        ) from exc
    if inflater.unconsumed_tail:
        raise IntegrityError(
            f"{ref.uri}: stored value inflates beyond {ref.size} bytes",
            details={"ref": ref.uri, "expected_size": ref.size},
        )
    if not inflater.eof or inflater.unused_data:
        raise IntegrityError(
            f"{ref.uri}: stored gzip stream is truncated or has trailing bytes",
            details={"ref": ref.uri},
        )
    return data


def verify(data: bytes, ref: StorageRef) -> bytes:
    """Return `data` if it matches the size and sha256 that `ref` carries.

    A size of 0 or an empty sha256 means "not known" and is not checked (an empty blob is
    still covered by its sha256). Raises `IntegrityError` naming the reference.
    """
    if ref.size and len(data) != ref.size:
        raise IntegrityError(
            f"{ref.uri}: stored blob is {len(data)} bytes, the reference says {ref.size}",
            details={"ref": ref.uri, "expected_size": ref.size, "actual_size": len(data)},
        )
    if ref.sha256:
        actual = hashlib.sha256(data).hexdigest()
        if actual != ref.sha256.lower():
            raise IntegrityError(
                f"{ref.uri}: stored blob has sha256 {actual}, the reference says {ref.sha256}",
                details={"ref": ref.uri, "expected_sha256": ref.sha256, "actual_sha256": actual},
            )
    return data


@attrs.frozen
class Expiry:
    """The side-file record of a KV entry with a time to live."""

    expires_at: datetime
    encoding: Encoding
    media_type: str

    def is_expired(self, now: datetime) -> bool:
        """Expired from the instant `expires_at` is reached."""
        return utc(now) >= self.expires_at

    def to_bytes(self) -> bytes:
        """The JSON stored in the side file."""
        body = {
            "expires_at": self.expires_at.isoformat(),
            "encoding": self.encoding,
            "media_type": self.media_type,
        }
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> Expiry:
        """Parse a side file. Raises `StorageError` naming `where` if it is malformed."""
        try:
            body: Any = json.loads(raw)
            expires_at = utc(datetime.fromisoformat(body["expires_at"]))
            encoding = body.get("encoding", "identity")
            media_type = str(body.get("media_type", "application/octet-stream"))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StorageError(
                f"{where}: expiry metadata is malformed", details={"ref": where}
            ) from exc
        if encoding not in _HEADERS.values():
            raise StorageError(
                f"{where}: expiry metadata names an unknown encoding", details={"ref": where}
            )
        return cls(expires_at, encoding, media_type)
