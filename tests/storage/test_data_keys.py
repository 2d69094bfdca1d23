"""Per-owner data keys wrapped by a master key, on `memory://`, a local folder and S3 (moto):
blobs are sealed with their owner's (client's) data key, nothing stored holds a deliverable's
plaintext, rotating the master key re-wraps the data keys without rewriting a blob, and a
missing or wrong master key is a clear one-line error."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import attrs
import pytest

from aifactory import AsyncFactory, FactoryConfig
from aifactory._clock import ManualClock
from aifactory._exceptions import StorageError
from aifactory.models import ExecutionStatus
from aifactory.storage import BlobStore, PlacementPolicy, StorageConfig, StorageKey
from aifactory.storage.encryption import DATA_KEY_MAGIC, MAGIC
from tests.helpers import fast_config, setup_people

from .conftest import SMALL, all_files, raw_fs, stored_bytes

DELIVERABLE = b"Market analysis for AI tools: confidential findings for Acme. " * 3


def _store(
    config: StorageConfig,
    clock: ManualClock,
    *masters: StorageKey,
    old: tuple[StorageKey, ...] = (),
) -> BlobStore:
    sealed = attrs.evolve(config, placement=SMALL, master_keys=masters, encryption_keys=old)
    return BlobStore(sealed, clock)


def _raw(config: StorageConfig, relative: str) -> bytes:
    fs, base = raw_fs(config.root, config.storage_options)
    return bytes(fs.cat_file(f"{base.rstrip('/')}/{relative}"))


def _data_key_id(stored: bytes) -> str:
    assert stored.startswith(DATA_KEY_MAGIC)
    return stored[len(DATA_KEY_MAGIC) : stored.index(b"\n")].decode()


def _no_plaintext_anywhere(config: StorageConfig, *secrets: bytes) -> list[str]:
    files = all_files(config)
    for name in files:
        raw = _raw(config, name)
        for secret in secrets:
            assert secret not in raw, f"{name} holds plaintext"
    return files


def test_a_clients_blobs_share_its_data_key_and_hold_no_plaintext(
    config: StorageConfig, clock: ManualClock
) -> None:
    master = StorageKey.generate("m1")
    store = _store(config, clock, master)
    store.bind_owner("exe_1", "cli_acme")
    store.bind_owner("exe_2", "cli_acme")
    refs = [
        store.put(DELIVERABLE[:40], namespace="stages", key="exe_1/outline/input.json"),
        store.put(DELIVERABLE, namespace="artifacts", key="exe_1/report/report.md"),
        store.put(DELIVERABLE, namespace="artifacts", key="exe_2/report/report.md"),
        store.put(DELIVERABLE, namespace="artifacts", key="exe_3/report/report.md"),  # no client
    ]
    ids = [_data_key_id(stored_bytes(store, ref)) for ref in refs]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    assert _raw(config, "keys/owners/cli_acme").decode() == ids[0]
    assert _raw(config, "keys/owners/exe_3").decode() == ids[3]
    # The data keys are stored wrapped: neither they nor any blob's plaintext is on disk/in S3.
    data_keys = [store._ring().key(i).secret for i in (ids[0], ids[3])]
    files = _no_plaintext_anywhere(config, DELIVERABLE[:16], b"confidential", b"aifkv", *data_keys)
    assert f"keys/data/{ids[0]}.json" in files
    record = json.loads(_raw(config, f"keys/data/{ids[0]}.json"))
    assert (record["owner"], record["master"]) == ("cli_acme", "m1")
    # Another process with the master key reads them all back, verified against the sha256.
    reader = _store(config, clock, master)
    for ref, size in zip(
        refs, (40, len(DELIVERABLE), len(DELIVERABLE), len(DELIVERABLE)), strict=True
    ):
        assert ref.sha256 == hashlib.sha256(DELIVERABLE[:size]).hexdigest()
        assert reader.get(ref) == DELIVERABLE[:size]


def test_rotation_rewraps_the_data_keys_and_leaves_the_blobs(
    config: StorageConfig, clock: ManualClock
) -> None:
    old, new = StorageKey.generate("m1"), StorageKey.generate("m2")
    store = _store(config, clock, old)
    store.bind_owner("exe_1", "cli_acme")
    refs = [
        store.put(DELIVERABLE[: 40 + n], namespace="artifacts", key=f"exe_{n}/r.md")
        for n in (1, 2, 110)
    ]
    before = [stored_bytes(store, ref) for ref in refs]
    assert store.rotate_master(new) == 3  # cli_acme's key, exe_2's, exe_110's
    assert [stored_bytes(store, ref) for ref in refs] == before  # no blob rewritten
    rotated = _store(config, clock, new)
    assert [rotated.get(ref) for ref in refs] == [DELIVERABLE[: 40 + n] for n in (1, 2, 110)]
    # New blobs of a known owner keep its data key, now wrapped by the new master key.
    later = rotated.put(DELIVERABLE, namespace="artifacts", key="exe_1/later.md")
    assert _data_key_id(stored_bytes(rotated, later)) == _data_key_id(before[0])
    with pytest.raises(StorageError, match="wrapped by master key 'm2', which is not configured"):
        _store(config, clock, old).get(refs[1])
    assert rotated.rotate_master(new) == 0  # all wrapped by it already


def test_a_missing_or_wrong_master_key_is_one_clear_line(
    config: StorageConfig, clock: ManualClock
) -> None:
    store = _store(config, clock, StorageKey.generate("m1"))
    ref = store.put(DELIVERABLE, namespace="artifacts", key="exe_1/r.md")
    impostor = _store(config, clock, StorageKey.generate("m1"))  # same id, other secret
    for attempt in (
        lambda: impostor.get(ref),
        lambda: impostor.put(b"x" * 40, namespace="artifacts", key="exe_1/s.md"),
    ):
        with pytest.raises(StorageError, match=r"^wrong master key: data key 'dk-") as caught:
            attempt()
        assert "\n" not in caught.value.message
    for reader in (BlobStore(attrs.evolve(config, placement=SMALL), clock), _store(config, clock)):
        with pytest.raises(StorageError, match="needs the master key 'm1', and none is config"):
            reader.get(ref)
    with pytest.raises(StorageError, match="wrapped by master key 'm1', which is not configured"):
        _store(config, clock, StorageKey.generate("m2")).get(ref)


def test_blobs_of_the_operator_key_scheme_stay_readable(
    config: StorageConfig, clock: ManualClock
) -> None:
    operator_key = StorageKey.generate("k1")
    legacy = BlobStore(attrs.evolve(config, placement=SMALL, encryption_keys=operator_key), clock)
    old_ref = legacy.put(DELIVERABLE, namespace="artifacts", key="exe_1/r.md")
    assert stored_bytes(legacy, old_ref).startswith(MAGIC + b"k1\n")
    store = _store(config, clock, StorageKey.generate("m1"), old=(operator_key,))
    new_ref = store.put(DELIVERABLE, namespace="artifacts", key="exe_2/r.md")
    assert stored_bytes(store, new_ref).startswith(DATA_KEY_MAGIC + b"dk-")
    assert store.get(old_ref) == store.get(new_ref) == DELIVERABLE


def test_master_keys_come_from_the_environment_a_file_or_the_home_never_a_default(
    tmp_path: Path,
) -> None:
    a, b = StorageKey.generate("a"), StorageKey.generate("b")

    def masters(home: Path | None, **environ: str) -> tuple[StorageKey, ...]:
        return FactoryConfig.from_environment(home, environ=environ).storage_config().master_keys

    assert masters(None) == ()
    assert masters(tmp_path) == ()
    assert masters(None, AIFACTORY_MASTER_KEY=f"{b.to_text()},{a.to_text()}") == (b, a)
    named = tmp_path / "secret" / "m.key"
    named.parent.mkdir()
    named.write_text(f"# the master key\n{a.to_text()}\n")
    assert masters(None, AIFACTORY_MASTER_KEY_FILE=str(named)) == (a,)
    (tmp_path / "master.key").write_text(b.to_text())
    assert masters(tmp_path) == (b,)
    with pytest.raises(StorageError, match=r"cannot read the key file .*missing"):
        masters(None, AIFACTORY_MASTER_KEY_FILE=str(tmp_path / "missing"))
    shown = repr(attrs.evolve(StorageConfig.memory(), master_keys=a))
    assert "master_keys=['a']" in shown
    assert a.to_text().split(":")[1] not in shown


@pytest.mark.anyio
async def test_a_factory_seals_a_clients_whole_execution_with_its_data_key(
    config: StorageConfig,
) -> None:
    # Small limits, so stage payloads and the deliverable all go to KV or R2.
    placement = PlacementPolicy(inline_max_bytes=16, kv_max_bytes=1024, gzip_min_bytes=256)
    storage = attrs.evolve(
        config, placement=placement, master_keys=StorageKey.generate("m1"), placements={}
    )
    async with AsyncFactory.embedded(config=fast_config(storage=storage)) as factory:
        people = await setup_people(factory)
        request = await people.ana.requests.create(
            title="Market analysis for AI tools",
            description="Need a comprehensive analysis of pricing, vendors and adoption.",
            urgency="high",
            category="research",
        )
        await people.admin.requests.assign_template(
            request.id, "quick_research", parameters={"granularity": 3}
        )
        execution = await people.admin.requests.execute(request.id)
        final = await people.admin.executions.wait(execution.id)
        assert final.status is ExecutionStatus.COMPLETED
        [deliverable] = await people.ana.deliverables.list(request.id)
        report = await people.ana.deliverables.download(deliverable.id)
    assert b"Market analysis for AI tools" in report
    assert deliverable.ref.sha256 == hashlib.sha256(report).hexdigest()
    files = _no_plaintext_anywhere(config, report[:24], report[-24:], b"Market analysis")
    blobs = [name for name in files if name.startswith(("kv/", "r2/"))]
    assert any(name.startswith("kv/stages/") for name in blobs)
    assert any(name.startswith(("kv/artifacts/", "r2/artifacts/")) for name in blobs)
    client_key = _raw(config, f"keys/owners/{people.client_id}").decode()
    assert {_data_key_id(_raw(config, name)) for name in blobs} == {client_key}
