"""Encryption at rest: on `memory://`, a local folder and S3 (moto), KV and R2 blobs are
stored sealed (AES-256-GCM), read back verified, refused when changed or under the wrong
key, and blobs written before encryption was turned on stay readable."""

from __future__ import annotations

import hashlib
import secrets

import attrs
import pytest

from aifactory import FactoryConfig
from aifactory._clock import ManualClock
from aifactory._exceptions import BadInputError, IntegrityError, StorageError
from aifactory.models.enums import StorageScheme
from aifactory.storage import BlobStore, StorageConfig, StorageKey
from aifactory.storage.encryption import MAGIC, parse_keys

from .conftest import SMALL, overwrite, stored_bytes

# Compressible text, so that the gzipped KV form is tried too (the SMALL policy gzips from
# 32 bytes, and sends more than 64 bytes to R2).
DELIVERABLE = b"Market analysis for AI tools: confidential findings for Acme. " * 3


def _sealed_store(config: StorageConfig, clock: ManualClock, *keys: StorageKey) -> BlobStore:
    return BlobStore(attrs.evolve(config, placement=SMALL, encryption_keys=keys), clock)


@pytest.mark.parametrize(("size", "scheme"), [(40, StorageScheme.KV), (150, StorageScheme.R2)])
def test_blobs_are_sealed_at_rest_and_read_back_verified(
    config: StorageConfig, clock: ManualClock, size: int, scheme: StorageScheme
) -> None:
    store = _sealed_store(config, clock, StorageKey.generate("k1"))
    data = DELIVERABLE[:size]
    ref = store.put(data, namespace="reports", key="acme/r1.md", media_type="text/markdown")
    assert ref.scheme is scheme
    # The reference still describes the plaintext.
    assert (ref.size, ref.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    raw = stored_bytes(store, ref)
    assert raw.startswith(MAGIC + b"k1\n")
    for fragment in (data, data[:16], b"confidential", b"aifkv"):
        assert fragment not in raw
    assert store.get(ref) == data


def test_a_changed_blob_fails_authentication(config: StorageConfig, clock: ManualClock) -> None:
    store = _sealed_store(config, clock, StorageKey.generate("k1"))
    ref = store.put(DELIVERABLE, namespace="reports", key="r1")
    raw = bytearray(stored_bytes(store, ref))
    raw[-20] ^= 0x01  # one bit of the ciphertext
    overwrite(store, ref, bytes(raw))
    with pytest.raises(IntegrityError, match=r"r2://reports/r1: sealed blob fails authentication"):
        store.get(ref)


def test_a_blob_moved_to_another_reference_fails(config: StorageConfig, clock: ManualClock) -> None:
    store = _sealed_store(config, clock, StorageKey.generate("k1"))
    first = store.put(DELIVERABLE, namespace="reports", key="acme")
    second = store.put(DELIVERABLE, namespace="reports", key="globex")  # the same plaintext
    overwrite(store, second, stored_bytes(store, first))
    with pytest.raises(IntegrityError, match="fails authentication"):
        store.get(second)


def test_the_wrong_key_or_no_key_is_a_clear_error(
    config: StorageConfig, clock: ManualClock
) -> None:
    writer = _sealed_store(config, clock, StorageKey.generate("k1"))
    ref = writer.put(DELIVERABLE[:40], namespace="reports", key="r1")
    impostor = _sealed_store(config, clock, StorageKey.generate("k1"))  # same id, other secret
    with pytest.raises(IntegrityError, match="sealed with another key named 'k1'"):
        impostor.get(ref)
    for reader in (
        _sealed_store(config, clock, StorageKey.generate("k2")),
        BlobStore(attrs.evolve(config, placement=SMALL), clock),  # encryption off
    ):
        with pytest.raises(StorageError, match="encrypted with storage key 'k1'") as caught:
            reader.get(ref)
        assert not isinstance(caught.value, IntegrityError)
        assert caught.value.details["key_id"] == "k1"


def test_blobs_written_without_encryption_stay_readable(
    config: StorageConfig, clock: ManualClock
) -> None:
    plain = BlobStore(attrs.evolve(config, placement=SMALL), clock)
    old = [plain.put(DELIVERABLE[:n], namespace="reports", key=f"old{n}") for n in (40, 150)]
    store = _sealed_store(config, clock, StorageKey.generate("k1"))
    new = store.put(DELIVERABLE, namespace="reports", key="new")
    assert [store.get(ref) for ref in old] == [DELIVERABLE[:40], DELIVERABLE[:150]]
    assert store.get(new) == DELIVERABLE
    # An unencrypted object that merely begins like a sealed one reads as itself.
    lookalike = MAGIC + b"k9\n" + secrets.token_bytes(100)
    ref = plain.put(lookalike, namespace="media", key="odd", scheme=StorageScheme.R2)
    assert plain.get(ref) == lookalike


def test_rotation_seals_with_the_first_key_and_opens_with_all(
    config: StorageConfig, clock: ManualClock
) -> None:
    old_key, new_key = StorageKey.generate("2026-01"), StorageKey.generate("2026-07")
    before = _sealed_store(config, clock, old_key).put(DELIVERABLE, namespace="r", key="a")
    rotated = _sealed_store(config, clock, new_key, old_key)
    after = rotated.put(DELIVERABLE, namespace="r", key="b")
    assert stored_bytes(rotated, after).startswith(MAGIC + b"2026-07\n")
    assert rotated.get(before) == rotated.get(after) == DELIVERABLE
    with pytest.raises(StorageError, match="'2026-01', which is not configured"):
        _sealed_store(config, clock, new_key).get(before)


def test_a_ttl_entry_is_sealed_and_expires_as_before(
    config: StorageConfig, clock: ManualClock
) -> None:
    store = _sealed_store(config, clock, StorageKey.generate("k1"))
    ref = store.put(DELIVERABLE[:40], namespace="cache", key="c", ttl_s=60)
    assert DELIVERABLE[:40] not in stored_bytes(store, ref)
    assert store.get(ref) == DELIVERABLE[:40]
    clock.advance(61)
    assert store.exists(ref) is False


def test_keys_never_show_their_secrets() -> None:
    key = StorageKey.generate("k1")
    text = key.to_text()
    assert StorageKey.parse(text) == key
    assert key.secret == StorageKey.parse(text).secret
    secret_text = text.split(":", 1)[1]
    config = StorageConfig.memory(placement=SMALL)
    sealed = attrs.evolve(config, encryption_keys=key)
    for shown in (repr(key), str(key), repr(sealed), repr(BlobStore(sealed))):
        assert secret_text not in shown
        assert key.secret.hex() not in shown
    assert "encryption_keys=['k1']" in repr(sealed)
    with pytest.raises(BadInputError) as caught:
        StorageKey.parse("k1:" + secret_text[:-4])
    assert secret_text[:-4] not in str(caught.value.to_dict())


def test_key_files_and_variables_are_parsed_with_the_first_key_sealing() -> None:
    a, b = StorageKey.generate("a"), StorageKey.generate("b")
    assert parse_keys(f"# comment\n{b.to_text()}\n\n{a.to_text()}  # old\n") == (b, a)
    assert parse_keys(f"{a.to_text()},{b.to_text()}") == (a, b)
    with pytest.raises(BadInputError, match="share an id"):
        parse_keys(f"{a.to_text()}\n{StorageKey.generate('a').to_text()}")
    with pytest.raises(BadInputError, match="32 random bytes"):
        StorageKey("short", b"\0" * 16)
    environ = {"AIFACTORY_STORAGE_KEY": f"{b.to_text()},{a.to_text()}"}
    storage = FactoryConfig.from_environment(None, environ=environ).storage_config()
    assert storage.encryption_keys == (b, a)
    assert FactoryConfig.from_environment(None, environ={}).storage_config().encryption_keys == ()
