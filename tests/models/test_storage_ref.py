"""StorageRef: text round trips, key confinement and the JSON codec, as properties."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifactory._exceptions import UnsafeKeyError
from aifactory.models.enums import StorageScheme
from aifactory.models.storage_ref import StorageRef, check_key, check_namespace
from aifactory.protocol.codec import from_json, to_json
from aifactory.storage import BlobStore, StorageConfig

# Written out by hand, not taken from the module's regexes, so the tests check them.
_SEGMENT_FIRST = string.ascii_letters + string.digits + "_-"
_SEGMENT_REST = _SEGMENT_FIRST + ".=+@,"
_NAMESPACE_FIRST = string.ascii_lowercase + string.digits
_NAMESPACE_REST = _NAMESPACE_FIRST + "_-"

segments = st.builds(
    str.__add__,
    st.sampled_from(_SEGMENT_FIRST),
    st.text(alphabet=_SEGMENT_REST, max_size=30),
)
keys = st.lists(segments, min_size=1, max_size=6).map("/".join)
namespaces = st.builds(
    str.__add__,
    st.sampled_from(_NAMESPACE_FIRST),
    st.text(alphabet=_NAMESPACE_REST, max_size=62),
)
schemes = st.sampled_from([StorageScheme.KV, StorageScheme.R2])
digests = st.binary(max_size=64).map(lambda b: hashlib.sha256(b).hexdigest())
media_types = st.sampled_from(["application/octet-stream", "text/markdown", "application/json"])


@st.composite
def unsafe_keys(draw: st.DrawFn) -> str:
    """A valid key with one escape worked into it."""
    parts = draw(st.lists(segments, min_size=1, max_size=4))
    at = draw(st.integers(0, len(parts)))
    kind = draw(
        st.sampled_from(["dotdot", "dot", "absolute", "backslash", "nul", "protocol", "empty"])
    )
    if kind == "dotdot":
        return "/".join([*parts[:at], "..", *parts[at:]])
    if kind == "dot":
        return "/".join([*parts[:at], ".", *parts[at:]])
    if kind == "absolute":
        return "/" + "/".join(parts)
    if kind == "empty":
        return "/".join([*parts[:at], "", *parts[at:]])
    key = "/".join(parts)
    cut = draw(st.integers(0, len(key)))
    if kind == "backslash":
        return key[:cut] + "\\" + key[cut:]
    if kind == "nul":
        return key[:cut] + "\x00" + key[cut:]
    protocol = draw(st.sampled_from(["file://", "s3://", "memory://", "kv://", "r2://", "gs://"]))
    return key[:cut] + protocol + key[cut:] if draw(st.booleans()) else protocol + key


@given(schemes, namespaces, keys, st.integers(0, 2**40), digests)
def test_uri_round_trips(
    scheme: StorageScheme, namespace: str, key: str, size: int, sha256: str
) -> None:
    ref = StorageRef(scheme, namespace, key, size=size, sha256=sha256)
    assert ref.uri == f"{scheme.value}://{namespace}/{key}"
    assert StorageRef.parse(ref.uri, size=size, sha256=sha256) == ref
    assert check_key(key) == key
    assert check_namespace(namespace) == namespace


@given(unsafe_keys())
def test_unsafe_keys_are_rejected_everywhere(key: str) -> None:
    with pytest.raises(UnsafeKeyError):
        check_key(key)
    with pytest.raises(UnsafeKeyError):
        StorageRef.parse("kv://ns/" + key)
    with pytest.raises(UnsafeKeyError):
        StorageRef.parse("r2://bucket/" + key)
    with pytest.raises(UnsafeKeyError):
        StorageRef(StorageScheme.KV, "ns", key)
    store = BlobStore(StorageConfig.memory("props"))
    for size in (1, 2000):
        with pytest.raises(UnsafeKeyError):
            store.put(b"x" * size, namespace="ns", key=key)


@given(
    st.text(max_size=80).filter(
        lambda s: "/" not in s and (not s or not s.isascii() or s[0] in "._-")
    )
)
def test_odd_namespaces_are_rejected(namespace: str) -> None:
    with pytest.raises(UnsafeKeyError):
        check_namespace(namespace)
    with pytest.raises(UnsafeKeyError):
        StorageRef.parse(f"kv://{namespace}/key")


@pytest.mark.parametrize(
    "uri", ["s3://b/k", "file:///etc/passwd", "memory://x/y", "kv:/ns/k", "kv://ns", "inline:"]
)
def test_foreign_or_incomplete_uris_are_rejected(uri: str) -> None:
    with pytest.raises(UnsafeKeyError):
        StorageRef.parse(uri)


def test_overlong_keys_are_rejected() -> None:
    with pytest.raises(UnsafeKeyError):
        check_key("a/" * 512 + "b")
    with pytest.raises(UnsafeKeyError):
        check_key("a" * 251)
    assert check_key("a" * 250) == "a" * 250


@given(schemes, namespaces, keys, st.integers(0, 2**40), digests, media_types)
def test_codec_round_trips_stored_refs(
    scheme: StorageScheme, namespace: str, key: str, size: int, sha256: str, media_type: str
) -> None:
    ref = StorageRef(scheme, namespace, key, size=size, sha256=sha256, media_type=media_type)
    assert from_json(to_json(ref), StorageRef) == ref


@given(st.binary(max_size=2048), media_types)
def test_codec_round_trips_inline_refs(data: bytes, media_type: str) -> None:
    ref = StorageRef.inline(data, media_type)
    decoded = from_json(to_json(ref), StorageRef)
    assert decoded == ref
    assert decoded.data == data
    assert decoded.sha256 == hashlib.sha256(data).hexdigest()
