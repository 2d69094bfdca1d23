"""`BlobStore`: put bytes somewhere by size, get them back verified.

Layout under a KV namespace root (`{root}/kv/{ns}` or its override):

```
{ns_root}/{key}                 the value: a one-line aifkv header + the (maybe gzipped) bytes
{ns_root}/.meta/{key}.json      expiry record, only for entries written with a TTL
{ns_root}/.../.tmp-<random>     in-flight writes (renamed onto the key when complete; not on S3)
```

R2 buckets (`{root}/r2/{bucket}` or its override) hold plain objects at `{bucket_root}/{key}`.
Keys never start a segment with `.`, so `.meta` and `.tmp-*` names cannot collide with them.

On local filesystems a key cannot be both a blob and a folder (`a` and `a/b`), and two TTL keys
`a` and `a.json/...` clash in `.meta`; such writes fail with `StorageError`. Emptied folders are
left in place, since removing them would race with concurrent writes below them.

Object stores (`s3://`, also for R2 and MinIO through s3fs) have no folders, so `a` and `a/b`
are independent keys there. Each value is written with one PUT, which publishes the whole
object or nothing, so no `.tmp-*` objects are ever made; each read is one GET. Object names are
limited to 1024 bytes, counting the root's prefix (and for KV keys `.meta/` and `.json`); longer
keys fail with `StorageError` before any request.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import threading
from datetime import timedelta

import anyio
import anyio.to_thread

from .._clock import Clock, SystemClock
from .._exceptions import BadInputError, NotFoundError, StorageError
from ..models.enums import StorageScheme
from ..models.storage_ref import StorageRef, check_key, check_namespace
from ._roots import Root, open_root, redact
from ._values import Encoding, Expiry, decode_kv, encode_kv, verify
from .datakeys import DataKeys
from .encryption import DATA_KEY_MAGIC, StorageKey, is_sealed, open_blob, seal, sealing_key
from .placement import StorageConfig

__all__ = ["BlobStore"]

# "No such blob" as filesystems report it: missing, or a folder / a file where a folder should be.
_ABSENT = (FileNotFoundError, IsADirectoryError, NotADirectoryError)
# What fsspec backends raise for I/O failures (timeouts are OSError subclasses since 3.11).
_BACKEND_ERRORS = (OSError, ValueError)


class BlobStore:
    """Stores blobs inline, in KV namespaces or in R2 buckets, and reads them back verified.

    Synchronous and safe to share between threads: the only mutable state is the cache of
    opened filesystems, guarded by a lock. Errors of fsspec and its backends surface as
    `StorageError` (or `NotFoundError`), chained to the original.
    """

    def __init__(self, config: StorageConfig, clock: Clock | None = None) -> None:
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._roots: dict[str, Root] = {}
        self._lock = threading.Lock()
        self._keys = {k.key_id: k for k in config.encryption_keys}
        self._data_keys: DataKeys | None = None

    @property
    def config(self) -> StorageConfig:
        """The configuration this store was built with."""
        return self._config

    def put(
        self,
        data: bytes,
        *,
        namespace: str,
        key: str,
        media_type: str = "application/octet-stream",
        ttl_s: float | None = None,
        scheme: StorageScheme | None = None,
        owner: str | None = None,
    ) -> StorageRef:
        """Store `data` and return a reference carrying its size and sha256.

        Placement follows `config.placement_for(namespace)` unless `scheme` forces one. Inline
        references carry the bytes themselves (nothing is written, and they never expire); KV
        writes go to namespace `namespace`, R2 writes to the bucket of that name. Large KV
        values are stored gzip-compressed. A put replaces any earlier value at the same key
        atomically: readers see the old bytes or the new ones, never a partial write.

        `ttl_s` makes a KV entry expire that many seconds after the clock's now. With master
        keys configured, the blob is sealed with the data key of `owner` (default: the first
        segment of `key`, an execution id for the factory's blobs; see `bind_owner`).

        Raises `UnsafeKeyError` for an invalid namespace or key (even for inline data),
        `BadInputError` for a non-positive TTL or a TTL on R2, and `StorageError` if the
        write fails.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BadInputError("blob data must be bytes", details={"type": type(data).__name__})
        data = bytes(data)
        check_namespace(namespace)
        check_key(key)
        _check_ttl(ttl_s)
        placement = self._config.placement_for(namespace)
        try:
            chosen = (
                StorageScheme(scheme) if scheme is not None else placement.scheme_for(len(data))
            )
        except ValueError as exc:
            raise BadInputError("unknown storage scheme", details={"scheme": repr(scheme)}) from exc
        if chosen is StorageScheme.INLINE:
            return StorageRef.inline(data, media_type)
        if chosen is StorageScheme.R2 and ttl_s is not None:
            raise BadInputError(
                "a TTL is only supported for KV entries, not R2 objects",
                details={"namespace": namespace, "key": key, "size": len(data)},
            )
        ref = StorageRef(
            chosen,
            namespace,
            key,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            media_type=media_type,
        )
        root = self._root(ref)
        path = root.blob_path(key)
        try:
            if chosen is StorageScheme.R2:
                self._write(root, path, self._sealed(data, ref, owner))
                return ref
            encoding: Encoding = "gzip" if placement.gzips(len(data)) else "identity"
            meta_path = root.meta_path(key)
            # The record changes before the value, so once the new value is visible no stale
            # (perhaps already expired) record applies to it.
            if ttl_s is None:
                _remove(root, meta_path)
            else:
                expires_at = self._clock.now() + timedelta(seconds=ttl_s)
                self._write(root, meta_path, Expiry(expires_at, encoding, media_type).to_bytes())
            self._write(root, path, self._sealed(encode_kv(data, encoding), ref, owner))
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"cannot write {ref.uri}: {exc}", details={"ref": ref.uri}) from exc
        return ref

    # -- the same, for async code: file and network I/O on a worker thread ----------------------

    def stays_inline(self, size: int, namespace: str, scheme: StorageScheme | None = None) -> bool:
        """Whether `put` would keep `size` bytes in `namespace` inline (no I/O)."""
        if scheme is not None:
            return StorageScheme(scheme) is StorageScheme.INLINE
        return self._config.placement_for(namespace).scheme_for(size) is StorageScheme.INLINE

    async def aput(
        self,
        data: bytes,
        *,
        namespace: str,
        key: str,
        media_type: str = "application/octet-stream",
        ttl_s: float | None = None,
        owner: str | None = None,
    ) -> StorageRef:
        """`put`, off the event loop when it writes (inline data is placed at once)."""
        call = functools.partial(
            self.put,
            data,
            namespace=namespace,
            key=key,
            media_type=media_type,
            ttl_s=ttl_s,
            owner=owner,
        )
        if self.stays_inline(len(data), namespace):
            return call()
        return await anyio.to_thread.run_sync(call)

    async def aget(self, ref: StorageRef) -> bytes:
        """`get`, off the event loop when it reads."""
        if ref.scheme is StorageScheme.INLINE:
            return self.get(ref)
        return await anyio.to_thread.run_sync(self.get, ref)

    async def aexists(self, ref: StorageRef) -> bool:
        """`exists`, off the event loop when it asks the filesystem."""
        if ref.scheme is StorageScheme.INLINE:
            return True
        return await anyio.to_thread.run_sync(self.exists, ref)

    async def adelete(self, ref: StorageRef) -> None:
        """`delete`, off the event loop."""
        if ref.scheme is not StorageScheme.INLINE:
            await anyio.to_thread.run_sync(self.delete, ref)

    def get(self, ref: StorageRef) -> bytes:
        """The bytes `ref` points to, checked against its size and sha256.

        Raises `NotFoundError` if the blob is missing or its TTL has passed, `IntegrityError`
        if the stored bytes do not match the reference, and `StorageError` if reading fails.
        """
        if ref.scheme is StorageScheme.INLINE:
            assert ref.data is not None
            return verify(ref.data, ref)
        root = self._root(ref)
        try:
            if ref.scheme is StorageScheme.KV:
                # Expired entries stay until purge_expired: deleting here could race with a put
                # that has just renewed the key.
                self._check_not_expired(root, ref)
            stored = root.read(root.blob_path(ref.key))
        except _ABSENT as exc:
            raise NotFoundError(f"no blob at {ref.uri}", details={"ref": ref.uri}) from exc
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"cannot read {ref.uri}: {exc}", details={"ref": ref.uri}) from exc
        stored = self._opened(stored, ref)
        data = decode_kv(stored, ref) if ref.scheme is StorageScheme.KV else stored
        return verify(data, ref)

    def bind_owner(self, owner: str, to: str) -> None:
        """Seal `owner`'s new blobs (those keyed `{owner}/...`) with the data key of `to`:
        the orchestrator binds an execution to its client before any stage runs, so that
        all of a client's blobs share the client's data key. Does nothing without master
        keys. Raises `StorageError` when the data key cannot be read or made."""
        if self._config.master_keys:
            self._ring().bind(owner, to)

    async def abind_owner(self, owner: str, to: str) -> None:
        """`bind_owner`, off the event loop when it does I/O."""
        if self._config.master_keys:
            await anyio.to_thread.run_sync(self.bind_owner, owner, to)

    def rotate_master(self, new_master: StorageKey) -> int:
        """Re-wrap every data key by `new_master`, without touching a blob; return how many
        were re-wrapped. The configured master keys must open them; afterwards configure
        `new_master` (first) instead. Raises `StorageError` as `DataKeys.rewrap` does."""
        if not isinstance(new_master, StorageKey):
            raise BadInputError("the new master key must be a StorageKey")
        return self._ring().rewrap(new_master)

    def _ring(self) -> DataKeys:
        with self._lock:
            if self._data_keys is None:
                root = open_root(self._config.keys_url, self._config.storage_options)
                self._data_keys = DataKeys(root, self._config.master_keys, self._write)
            return self._data_keys

    def _sealed(self, payload: bytes, ref: StorageRef, owner: str | None) -> bytes:
        """What is written for `ref`: `payload` sealed with its owner's data key under
        master keys, else with the first encryption key, else as it is."""
        if self._config.master_keys:
            data_key = self._ring().for_owner(owner or ref.key.split("/", 1)[0])
            return seal(payload, data_key, ref.uri, magic=DATA_KEY_MAGIC)
        keys = self._config.encryption_keys
        return seal(payload, keys[0], ref.uri) if keys else payload

    def _opened(self, stored: bytes, ref: StorageRef) -> bytes:
        """What `_sealed` was given for the stored bytes of `ref`: opened if sealed (blobs
        written without encryption pass as they are)."""
        if not is_sealed(stored):
            return stored
        if stored.startswith(DATA_KEY_MAGIC):
            plain_r2 = ref.scheme is StorageScheme.R2 and _matches(stored, ref)
            if not self._config.master_keys and plain_r2:
                return stored  # a plain blob that happens to begin like a sealed one
            _, data_key_id = sealing_key(stored, ref.uri)
            key = self._ring().key(data_key_id)  # raises when the master key is missing
            return open_blob(stored, {data_key_id: key}, ref.uri)
        if self._keys:
            return open_blob(stored, self._keys, ref.uri)
        if ref.scheme is StorageScheme.R2 and _matches(stored, ref):
            return stored  # a plain object that happens to begin like a sealed one
        return open_blob(stored, {}, ref.uri)  # raises: names the key to configure

    def exists(self, ref: StorageRef) -> bool:
        """Whether `ref` can be read: inline always, KV/R2 if stored and not expired.

        Does not verify the bytes. Raises `StorageError` if the filesystem cannot be asked.
        """
        if ref.scheme is StorageScheme.INLINE:
            return True
        root = self._root(ref)
        try:
            if ref.scheme is StorageScheme.KV:
                self._check_not_expired(root, ref)
            return bool(root.fs.isfile(root.blob_path(ref.key)))
        except NotFoundError:
            return False
        except _BACKEND_ERRORS as exc:
            raise StorageError(
                f"cannot look up {ref.uri}: {exc}", details={"ref": ref.uri}
            ) from exc

    def delete(self, ref: StorageRef) -> None:
        """Remove the blob `ref` points to (and its expiry record). Deleting twice is fine.

        Inline references own no storage, so deleting one does nothing. Raises `StorageError`
        if the filesystem refuses.
        """
        if ref.scheme is StorageScheme.INLINE:
            return
        root = self._root(ref)
        try:
            # Value first: a crash in between leaves an orphan record, which purge_expired
            # removes, rather than a value that has silently lost its expiry.
            _remove(root, root.blob_path(ref.key))
            if ref.scheme is StorageScheme.KV:
                _remove(root, root.meta_path(ref.key))
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"cannot delete {ref.uri}: {exc}", details={"ref": ref.uri}) from exc

    def probe(self) -> None:
        """Write and delete a small object under the storage root (in its `.meta` folder,
        where no key can be): what a readiness check asks of the storage.

        Raises `StorageError` if the storage cannot be opened or written.
        """
        root = open_root(self._config.root, self._config.storage_options)
        path = root.temp_path(f"{root.meta_base}/probe")
        try:
            self._write(root, path, b"")
            _remove(root, path)
        except _BACKEND_ERRORS as exc:
            raise StorageError(
                f"cannot write to storage at {redact(self._config.root)}: {exc}"
            ) from exc

    async def aprobe(self) -> None:
        """`probe`, off the event loop."""
        await anyio.to_thread.run_sync(self.probe)

    def purge_expired(self, namespace: str) -> int:
        """Delete the expired entries of KV namespace `namespace`; return how many there were.

        Malformed expiry records are left alone. A put racing with the purge of the same key
        may be lost; TTL keys are meant to be written once. Raises `UnsafeKeyError` for an
        invalid namespace and `StorageError` if the filesystem fails.
        """
        check_namespace(namespace)
        root = self._root_for(StorageScheme.KV, namespace)
        now = self._clock.now()
        try:
            paths = root.fs.find(root.meta_base)
        except _ABSENT:
            return 0
        except _BACKEND_ERRORS as exc:
            raise StorageError(
                f"cannot list kv://{namespace}: {exc}", details={"namespace": namespace}
            ) from exc
        purged = 0
        for path in sorted(str(p) for p in paths):
            key = root.key_of_meta(path)
            if key is None:
                continue
            where = f"kv://{namespace}/{key}"
            try:
                expiry = Expiry.from_bytes(root.read(path), where)
            except (StorageError, *_ABSENT):
                continue
            except _BACKEND_ERRORS as exc:
                raise StorageError(
                    f"cannot read expiry of {where}: {exc}", details={"ref": where}
                ) from exc
            if expiry.is_expired(now):
                self.delete(StorageRef(StorageScheme.KV, namespace, key))
                purged += 1
        return purged

    def resolve_url(self, ref: StorageRef) -> str:
        """The fsspec URL the KV or R2 reference `ref` maps to (for debugging and tooling).

        Raises `BadInputError` for inline references, which live nowhere, and `StorageError`
        if the filesystem cannot be opened.
        """
        if ref.scheme is StorageScheme.INLINE:
            raise BadInputError("an inline reference has no storage URL")
        root = self._root(ref)
        return root.url_of(root.blob_path(ref.key))

    def _root(self, ref: StorageRef) -> Root:
        return self._root_for(ref.scheme, ref.namespace)

    def _root_for(self, scheme: StorageScheme, namespace: str) -> Root:
        config = self._config
        url = config.kv_url(namespace) if scheme is StorageScheme.KV else config.r2_url(namespace)
        with self._lock:
            root = self._roots.get(url)
            if root is None:
                root = open_root(url, config.storage_options)
                self._roots[url] = root
        return root

    def _check_not_expired(self, root: Root, ref: StorageRef) -> None:
        try:
            raw = root.read(root.meta_path(ref.key))
        except _ABSENT:
            return
        if Expiry.from_bytes(raw, ref.uri).is_expired(self._clock.now()):
            raise NotFoundError(f"{ref.uri} has expired", details={"ref": ref.uri})

    @staticmethod
    def _write(root: Root, path: str, payload: bytes) -> None:
        if root.is_object_store:
            # One PUT (or multipart upload) publishes the whole object or nothing; a temporary
            # name would only add a copy, a delete and a leak when the delete fails.
            root.fs.pipe_file(path, payload)
            return
        temp = root.temp_path(path)
        try:
            if root.is_local:
                _write_local(root, path, temp, payload)
            else:
                # Other filesystems may show a file while it is being written, so the temp name
                # keeps partial writes away from the key itself.
                root.fs.pipe_file(temp, payload)
                root.fs.mv(temp, path)
        except BaseException:
            with contextlib.suppress(*_BACKEND_ERRORS):
                _remove(root, temp)
            raise

    def __repr__(self) -> str:
        return f"BlobStore(root={redact(self._config.root)!r})"


def _matches(data: bytes, ref: StorageRef) -> bool:
    try:
        verify(data, ref)
    except StorageError:
        return False
    return True


def _check_ttl(ttl_s: float | None) -> None:
    if ttl_s is None:
        return
    # bool is an int subclass, and NaN/inf would make an entry that never (or always) expires.
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not math.isfinite(ttl_s):
        raise BadInputError(
            "ttl_s must be a positive number of seconds", details={"ttl_s": repr(ttl_s)}
        )
    if ttl_s <= 0:
        raise BadInputError("ttl_s must be a positive number of seconds", details={"ttl_s": ttl_s})


def _write_local(root: Root, path: str, temp: str, payload: bytes) -> None:
    folder = os.path.dirname(path)
    root.fs.makedirs(folder, exist_ok=True)
    with open(temp, "wb") as file:
        file.write(payload)
        file.flush()
        # Without fsync a power cut after the rename can leave a zero-length file at the key.
        os.fsync(file.fileno())
    # os.replace, unlike shutil.move (fsspec's mv), is atomic on Windows too.
    os.replace(temp, path)
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    # Persists the rename itself; folders cannot be opened this way on Windows.
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(root: Root, path: str) -> None:
    try:
        root.fs.rm_file(path)
    except _ABSENT:
        pass
    except PermissionError:
        # macOS reports unlinking a folder as EPERM: a folder at the key means no blob there.
        if root.fs.isfile(path):
            raise
