"""Per-owner data keys, wrapped by the operator's master key (envelope encryption).

```
master key          the operator's: StorageConfig.master_keys (AIFACTORY_MASTER_KEY,
 │                  AIFACTORY_MASTER_KEY_FILE or HOME/master.key); never stored with the blobs
 └─ data key        32 random bytes per owner (a client, else an execution), stored only
     │              wrapped (AES-256-GCM) by the master key, beside the blobs
     └─ blob        sealed with its owner's data key: `aifenc/2 <data key id>` + AES-256-GCM
```

The wrapped data keys live below the storage root, in `{root}/keys` (local folder or S3 alike):

```
{root}/keys/data/{data key id}.json    {"v": 1, "id", "owner", "master", "nonce", "wrapped"}
{root}/keys/owners/{owner}             the id of the data key sealing the owner's new blobs
```

A blob's owner is the first segment of its key (every blob the factory writes is keyed
`{execution id}/...`), unless the writer names one. An execution of a client is bound to its
client (`bind`, by the orchestrator before any stage runs), so its `owners` entry names the
client's data key and every blob of a client, whichever process writes it, is sealed with
that client's key. An execution without a client has a data key of its own.

The wrapping authenticates the data key's id and owner as associated data, so a record
cannot be relabelled. Rotating the master key (`rewrap`) rewrites these small records only;
blobs keep naming the same data keys. Two processes making a first data key for one owner at
once each make one; the last `owners` entry wins and both keys stay readable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._exceptions import StorageError
from ._roots import Root
from .encryption import StorageKey

__all__ = ["DataKeys", "unwrap", "wrap"]

_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_NONCE_BYTES = 12
_WHERE_TO_GIVE = "AIFACTORY_MASTER_KEY, AIFACTORY_MASTER_KEY_FILE or HOME/master.key"

# What fsspec backends raise for missing files and I/O failures.
_ABSENT = (FileNotFoundError, IsADirectoryError, NotADirectoryError)
_BACKEND_ERRORS = (OSError, ValueError)


def _aad(data_key_id: str, owner: str) -> bytes:
    return f"aifdk/1 {data_key_id} {owner}".encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def wrap(data_key: StorageKey, owner: str, master: StorageKey) -> bytes:
    """The stored record of `data_key` of `owner`, wrapped (AES-256-GCM) by `master`."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    wrapped = AESGCM(master.secret).encrypt(nonce, data_key.secret, _aad(data_key.key_id, owner))
    record = {
        "v": 1,
        "id": data_key.key_id,
        "owner": owner,
        "master": master.key_id,
        "nonce": _b64(nonce),
        "wrapped": _b64(wrapped),
    }
    return json.dumps(record, sort_keys=True).encode()


def unwrap(record: bytes, masters: Iterable[StorageKey], where: str) -> tuple[StorageKey, str]:
    """The data key in the stored `record` (at `where`) and its owner.

    Raises `StorageError` in one line when no master key is configured, when the record was
    wrapped by a master key whose id is not configured, or when the configured key of that
    id does not open it (a wrong master key); and when the record is malformed.
    """
    ring = {m.key_id: m for m in masters}
    try:
        fields: dict[str, Any] = json.loads(record)
        key_id, owner, master_id = fields["id"], fields["owner"], fields["master"]
        nonce = base64.b64decode(fields["nonce"], validate=True)
        wrapped = base64.b64decode(fields["wrapped"], validate=True)
        if not all(isinstance(v, str) for v in (key_id, owner, master_id)):
            raise TypeError("ids are text")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise StorageError(
            f"{where}: malformed data key record", details={"data_key": where}
        ) from exc
    if not ring:
        raise StorageError(
            f"{where} needs the master key {master_id!r}, and none is configured: give it in "
            f"{_WHERE_TO_GIVE}",
            details={"data_key": key_id, "master_key": master_id},
        )
    master = ring.get(master_id)
    if master is None:
        raise StorageError(
            f"{where} is wrapped by master key {master_id!r}, which is not configured (have "
            f"{sorted(ring)}): give it in {_WHERE_TO_GIVE}",
            details={"data_key": key_id, "master_key": master_id},
        )
    try:
        secret = AESGCM(master.secret).decrypt(nonce, wrapped, _aad(key_id, owner))
    except (InvalidTag, ValueError) as exc:
        raise StorageError(
            f"wrong master key: {where} does not open with the configured master key {master_id!r}",
            details={"data_key": key_id, "master_key": master_id},
        ) from exc
    return StorageKey(key_id, secret), owner


def _master_of(record: bytes) -> str | None:
    try:
        found = json.loads(record).get("master")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _owner_name(owner: str) -> str:
    """The file name of `owner`'s entry: the owner itself when it is a plain id."""
    if _OWNER.fullmatch(owner):
        return owner
    return "h-" + hashlib.sha256(owner.encode()).hexdigest()[:40]


class DataKeys:
    """The wrapped data keys of one storage, read and made on demand and cached unwrapped.

    `root` is the `{storage root}/keys` folder, `masters` the configured master keys (the
    first wraps new data keys), `write(root, path, payload)` the store's atomic write.
    Thread-safe. Errors are `StorageError`s.
    """

    def __init__(
        self,
        root: Root,
        masters: tuple[StorageKey, ...],
        write: Callable[[Root, str, bytes], None],
    ) -> None:
        self._root = root
        self._masters = masters
        self._write = write
        self._lock = threading.RLock()  # for_owner holds it while key() reads
        self._by_id: dict[str, StorageKey] = {}
        self._by_owner: dict[str, StorageKey] = {}

    def key(self, data_key_id: str) -> StorageKey:
        """The data key `data_key_id`, unwrapped. Raises `StorageError` when it is missing
        or the master key is missing or wrong (see `unwrap`)."""
        with self._lock:
            found = self._by_id.get(data_key_id)
        if found is not None:
            return found
        where = f"data key {data_key_id!r}"
        try:
            record = self._root.read(self._root.blob_path(f"data/{data_key_id}.json"))
        except _ABSENT as exc:
            raise StorageError(
                f"{where} is missing from {self._root.url}", details={"data_key": data_key_id}
            ) from exc
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"cannot read {where}: {exc}") from exc
        key, _ = unwrap(record, self._masters, where)
        with self._lock:
            self._by_id[data_key_id] = key
        return key

    def for_owner(self, owner: str) -> StorageKey:
        """The data key sealing `owner`'s new blobs; made (and stored wrapped) on first use.
        Raises `StorageError` when no master key is configured or it does not open the
        owner's stored key."""
        with self._lock:
            found = self._by_owner.get(owner)
            if found is not None:
                return found
            key = self._stored_for(owner)
            if key is None:
                if not self._masters:
                    raise StorageError(f"no master key is configured: give it in {_WHERE_TO_GIVE}")
                key = StorageKey.generate(f"dk-{secrets.token_hex(12)}")
                self._put(f"data/{key.key_id}.json", wrap(key, owner, self._masters[0]))
                self._put(f"owners/{_owner_name(owner)}", key.key_id.encode())
            self._by_owner[owner] = self._by_id[key.key_id] = key
            return key

    def bind(self, owner: str, to: str) -> None:
        """Make `to`'s data key seal `owner`'s new blobs (an execution's, its client's)."""
        key = self.for_owner(to)
        with self._lock:
            if self._by_owner.get(owner) is key:
                return
            self._put(f"owners/{_owner_name(owner)}", key.key_id.encode())
            self._by_owner[owner] = key

    def rewrap(self, master: StorageKey) -> int:
        """Wrap every stored data key by `master` instead (the blobs stay as they are);
        return how many records were rewritten (those wrapped by `master` already are
        skipped). Raises `StorageError` when a record does not open with the configured
        master keys; the records rewrapped before it stay rewrapped, so it can be run again."""
        base = f"{self._root.base}/data"
        try:
            paths = sorted(str(p) for p in self._root.fs.find(base))
        except _ABSENT:
            return 0
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"cannot list the data keys in {self._root.url}: {exc}") from exc
        done = 0
        for path in paths:
            name = path.rsplit("/", 1)[-1]
            if not name.endswith(".json"):
                continue  # an in-flight write's temporary file
            try:
                record = self._root.read(path)
            except _BACKEND_ERRORS as exc:
                raise StorageError(f"cannot read data key {name}: {exc}") from exc
            if _master_of(record) == master.key_id:
                continue
            key, owner = unwrap(record, self._masters, f"data key {name[:-5]!r}")
            self._put(f"data/{name}", wrap(key, owner, master))
            done += 1
        return done

    def _stored_for(self, owner: str) -> StorageKey | None:
        try:
            raw = self._root.read(self._root.blob_path(f"owners/{_owner_name(owner)}"))
        except _ABSENT:
            return None
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"cannot read the data key of {owner!r}: {exc}") from exc
        data_key_id = raw.decode("ascii", "replace").strip()
        return self.key(data_key_id)

    def _put(self, path: str, payload: bytes) -> None:
        try:
            self._write(self._root, self._root.blob_path(path), payload)
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"cannot write {path} in {self._root.url}: {exc}") from exc
