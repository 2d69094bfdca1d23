"""Where blobs go: the size-based `PlacementPolicy` and the `StorageConfig` of roots.

Both are frozen values without I/O. `BlobStore` (in `blobs`) turns them into filesystems.

`PlacementPolicy()` is the seed's wire placement (inline under 1 KiB, KV up to 25 MiB, R2
above): the default everywhere, and what travels over HTTP. `StorageConfig.placements` may
give single namespaces their own. The embedded factory (`FactoryConfig`) keeps stage payloads
of its in-process workers inline up to 64 KiB that way: they are then committed with their
stage in the state database, as durable as the stage record itself (SQLite WAL,
`synchronous=NORMAL`, safe from a process crash), instead of costing a KV file and two fsyncs
per stage for a durability the stage record does not have.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .._exceptions import BadInputError
from ..models.enums import StorageScheme
from ..models.storage_ref import check_namespace
from ._roots import check_protocol, redact
from .encryption import StorageKey

__all__ = ["PlacementPolicy", "StorageConfig"]


@attrs.frozen
class PlacementPolicy:
    """Decides from a blob's size whether it travels inline, goes to KV or to R2.

    - data strictly smaller than `inline_max_bytes` travels **inline** (inside the message);
    - data up to and including `kv_max_bytes` goes to **KV**;
    - anything bigger goes to **R2**.

    KV values of at least `gzip_min_bytes` are stored gzip-compressed; references always
    describe the uncompressed bytes.

    Raises `BadInputError` if a limit is negative or `inline_max_bytes > kv_max_bytes`.
    """

    inline_max_bytes: int = 1024
    kv_max_bytes: int = 25 * 1024 * 1024
    gzip_min_bytes: int = 10 * 1024

    def __attrs_post_init__(self) -> None:
        limits = {
            "inline_max_bytes": self.inline_max_bytes,
            "kv_max_bytes": self.kv_max_bytes,
            "gzip_min_bytes": self.gzip_min_bytes,
        }
        for name, value in limits.items():
            # bool is an int subclass; True as a byte limit is always a mistake.
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadInputError(
                    f"{name} must be a non-negative integer", details={name: repr(value)}
                )
        if self.inline_max_bytes > self.kv_max_bytes:
            raise BadInputError(
                "inline_max_bytes must not exceed kv_max_bytes",
                details={
                    "inline_max_bytes": self.inline_max_bytes,
                    "kv_max_bytes": self.kv_max_bytes,
                },
            )

    def scheme_for(self, size: int) -> StorageScheme:
        """The scheme a blob of `size` bytes is placed in.

        Raises `BadInputError` for a negative size.
        """
        if size < 0:
            raise BadInputError("a blob size cannot be negative", details={"size": size})
        if size < self.inline_max_bytes:
            return StorageScheme.INLINE
        if size <= self.kv_max_bytes:
            return StorageScheme.KV
        return StorageScheme.R2

    def gzips(self, size: int) -> bool:
        """Whether a KV value of `size` (uncompressed) bytes is stored gzip-compressed."""
        return size >= self.gzip_min_bytes


def _location(value: str | os.PathLike[str]) -> str:
    # A `Path` names a local folder as well as its text does.
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _url_map(value: Mapping[str, str | os.PathLike[str]]) -> dict[str, str]:
    # A private copy, so a caller mutating its own dict later cannot move stored data around.
    return {name: _location(url) for name, url in value.items()}


def _options_map(value: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {protocol: dict(options) for protocol, options in value.items()}


def _placement_map(value: Mapping[str, PlacementPolicy]) -> dict[str, PlacementPolicy]:
    for name, policy in value.items():
        check_namespace(name)
        if not isinstance(policy, PlacementPolicy):
            raise BadInputError(
                f"the placement for {name!r} must be a PlacementPolicy",
                details={"namespace": name},
            )
    return dict(value)


def _keys(value: StorageKey | Iterable[StorageKey] | None) -> tuple[StorageKey, ...]:
    if value is None:
        return ()
    keys = (value,) if isinstance(value, StorageKey) else tuple(value)
    if not all(isinstance(k, StorageKey) for k in keys):
        raise BadInputError(
            "encryption keys are aifactory.storage.StorageKey values",
            details={"field": "encryption_keys"},
        )
    ids = [k.key_id for k in keys]
    if len(set(ids)) != len(ids):
        raise BadInputError("two encryption keys share an id", details={"key_ids": ids})
    return keys


def _key_ids(keys: tuple[StorageKey, ...]) -> str:
    return repr([k.key_id for k in keys])  # never the secrets


def _redacted_map(value: Mapping[str, str]) -> str:
    return repr({name: redact(url) for name, url in value.items()})


def _check_url_map(kind: str, value: Mapping[str, str]) -> None:
    for name, url in value.items():
        check_namespace(name)
        if not isinstance(url, str) or not url.strip():
            raise BadInputError(
                f"the {kind} override for {name!r} must be a non-empty fsspec URL or path",
                details={kind: name},
            )
        check_protocol(url, f"{kind}.{name}")


@attrs.frozen
class StorageConfig:
    """Where KV namespaces and R2 buckets live, as fsspec URLs.

    By default everything lives under `root` (an fsspec URL such as `memory://x`, `s3://bucket/p`
    or a local path, given as a `str` or `os.PathLike`): KV namespace `ns` at `{root}/kv/{ns}`
    and R2 bucket `b` at `{root}/r2/{b}`. `kv_namespaces` and `r2_buckets` map single names to
    their own URL instead. Every location is a local path or a `file://`, `memory://` or
    `s3://` URL (`SUPPORTED_PROTOCOLS`); the filesystems are opened on first use.
    `storage_options` holds per-protocol keyword arguments for the filesystem, e.g.
    `{"s3": {"endpoint_url": "https://<account>.r2.cloudflarestorage.com"}}`.

    `placement` decides by size where blobs go (the seed's wire thresholds by default);
    `placements` overrides it for single namespaces. The embedded factory keeps stage
    payloads of its in-process workers inline up to 64 KiB this way (see `FactoryConfig`).

    `encryption_keys` (a `StorageKey` or several) encrypt every KV and R2 blob at rest with
    AES-256-GCM (`aifactory.storage.encryption`): the first seals new blobs, each opens the
    blobs sealed under its id, and blobs written without encryption stay readable. Inline
    data lives in messages and the state database, and is not sealed. Off when empty (the
    default); the repr shows key ids only.

    `master_keys` (a `StorageKey` or several) turn on per-owner data keys instead
    (`aifactory.storage.datakeys`): every new KV and R2 blob is sealed with its owner's
    (client's, else execution's) random data key, stored at `keys_url` wrapped by the first
    master key; every master key opens the data keys it wrapped. `encryption_keys` then only
    open blobs sealed before (the migration path).

    Raises `BadInputError` for an empty root or override or one on an unsupported protocol,
    and `UnsafeKeyError` for an override whose name is not a valid namespace or bucket name.
    """

    # URLs may carry `user:password@`; reprs end up in logs.
    root: str = attrs.field(converter=_location, repr=lambda url: repr(redact(url)))
    kv_namespaces: dict[str, str] = attrs.field(
        factory=dict, converter=_url_map, repr=_redacted_map
    )
    r2_buckets: dict[str, str] = attrs.field(factory=dict, converter=_url_map, repr=_redacted_map)
    storage_options: dict[str, dict[str, Any]] = attrs.field(
        factory=dict, converter=_options_map, repr=False
    )
    placement: PlacementPolicy = attrs.field(factory=PlacementPolicy)
    placements: dict[str, PlacementPolicy] = attrs.field(factory=dict, converter=_placement_map)
    encryption_keys: tuple[StorageKey, ...] = attrs.field(
        default=(), converter=_keys, repr=_key_ids
    )
    master_keys: tuple[StorageKey, ...] = attrs.field(default=(), converter=_keys, repr=_key_ids)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.root, str) or not self.root.strip():
            raise BadInputError("the storage root must be a non-empty fsspec URL or path")
        check_protocol(self.root, "root")
        _check_url_map("kv_namespaces", self.kv_namespaces)
        _check_url_map("r2_buckets", self.r2_buckets)

    @classmethod
    def memory(
        cls,
        name: str | None = None,
        *,
        placement: PlacementPolicy | None = None,
        placements: Mapping[str, PlacementPolicy] | None = None,
    ) -> StorageConfig:
        """A config on a fresh, unique `memory://` root; for tests.

        fsspec's memory filesystem is shared by the whole process, so every call gets its own
        random prefix (`name` only makes it easier to recognise). Raises `UnsafeKeyError` if
        `name` is not a valid namespace-style name.
        """
        label = check_namespace(name) if name is not None else "aifactory"
        root = f"memory://{label}-{secrets.token_hex(8)}"
        return cls(
            root, placement=placement or PlacementPolicy(), placements=dict(placements or {})
        )

    @classmethod
    def local(
        cls,
        path: str | os.PathLike[str],
        *,
        placement: PlacementPolicy | None = None,
        placements: Mapping[str, PlacementPolicy] | None = None,
    ) -> StorageConfig:
        """A config rooted at the local folder `path` (made absolute; created on first write)."""
        return cls(
            os.path.abspath(os.fspath(path)),
            placement=placement or PlacementPolicy(),
            placements=dict(placements or {}),
        )

    def placement_for(self, namespace: str) -> PlacementPolicy:
        """The placement policy of KV namespace (or R2 bucket) `namespace`."""
        return self.placements.get(namespace, self.placement)

    def kv_url(self, namespace: str) -> str:
        """The fsspec URL of KV namespace `namespace`. Raises `UnsafeKeyError` for a bad name."""
        check_namespace(namespace)
        return self.kv_namespaces.get(namespace) or _join(self.root, "kv", namespace)

    @property
    def keys_url(self) -> str:
        """The fsspec URL of the folder holding the wrapped data keys (`{root}/keys`)."""
        return _join(self.root, "keys")

    def r2_url(self, bucket: str) -> str:
        """The fsspec URL of R2 bucket `bucket`. Raises `UnsafeKeyError` for a bad name."""
        check_namespace(bucket)
        return self.r2_buckets.get(bucket) or _join(self.root, "r2", bucket)


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])
