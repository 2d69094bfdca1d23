"""How the store keeps stage commits cheap: checkpoint rows that hold only what their version
adds, inline bytes written once beside the rows that reference them, updates that leave the
fixed columns alone, and a write-ahead log that starts over."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from aifactory import IntegrityError
from aifactory.models import (
    Checkpoint,
    Execution,
    ExecutionStatus,
    StageRun,
    StageSpec,
    StageStatus,
    StorageRef,
    Template,
    Tier,
)
from aifactory.state._checkpointer import WalCheckpointer
from aifactory.state.sqlite import SQLiteStore
from aifactory.storage import BlobStore, StorageConfig

NOW = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
TEMPLATE = Template(
    "t", "T", "", "x", (Tier.BASIC,), tuple(StageSpec(s, "w") for s in ("a", "b", "c"))
)


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(":memory:" if request.param == "memory" else tmp_path / "s.sqlite3")


def _execution(store: SQLiteStore) -> Execution:
    execution = Execution(
        "exec_1", None, None, TEMPLATE, {"p": 1}, ExecutionStatus.RUNNING, NOW, NOW, stages_total=3
    )
    runs = [StageRun("exec_1", s.id, "w", StageStatus.PENDING) for s in TEMPLATE.stages]
    store.add_execution(execution, runs)
    return execution


def _commit(
    store: SQLiteStore, execution: Execution, stage: str, version: int, data: bytes
) -> Execution:
    [run] = [r for r in store.get_stage_runs("exec_1") if r.stage_id == stage]
    running = attrs.evolve(
        run, status=StageStatus.RUNNING, attempt=1, input_ref=StorageRef.inline(b"{}")
    )
    store.start_stage(running)
    ref = StorageRef.inline(data, "application/json")
    done = attrs.evolve(running, status=StageStatus.SUCCEEDED, output_ref=ref)
    progressed = attrs.evolve(execution, stages_done=version)
    store.finish_stage(done, progressed, Checkpoint("exec_1", version, {stage: ref}, NOW))
    return progressed


def test_the_latest_checkpoint_folds_the_versions(store: SQLiteStore) -> None:
    execution = _execution(store)
    outputs = {"a": b'{"a": 1}', "b": b"x" * 5000, "c": b'{"c": 3}'}
    for version, (stage, data) in enumerate(outputs.items(), start=1):
        execution = _commit(store, execution, stage, version, data)
        checkpoint = store.latest_checkpoint("exec_1")
        assert checkpoint is not None
        assert checkpoint.version == version
        assert {k: v.data for k, v in checkpoint.completed.items()} == dict(
            list(outputs.items())[:version]
        )
    # Each row holds only what its version added: writing them does not grow with the
    # number of stages committed before.
    rows = store._execute("SELECT version, completed FROM checkpoints ORDER BY version").fetchall()
    assert [len(json.loads(r[1])) for r in rows] == [1, 1, 1]


def test_large_inline_bytes_are_written_once_and_read_back_verified(
    store: SQLiteStore,
) -> None:
    execution = _execution(store)
    big = b"y" * 20_000
    _commit(store, execution, "a", 1, big)
    [stored] = store._execute("SELECT output_ref FROM stage_runs WHERE stage_id = 'a'").fetchone()
    assert len(stored) < 300  # a reference to the payload, not 27 KB of base64
    assert store._execute("SELECT COUNT(*) FROM payloads").fetchone()[0] == 1  # run + checkpoint
    [run] = [r for r in store.get_stage_runs("exec_1") if r.stage_id == "a"]
    assert run.output_ref is not None
    assert run.output_ref.data == big
    blobs = BlobStore(StorageConfig.memory())
    assert blobs.get(run.output_ref) == big
    store._execute("UPDATE payloads SET data = ?", (b"z" * 20_000,))
    [tampered] = [r for r in store.get_stage_runs("exec_1") if r.stage_id == "a"]
    assert tampered.output_ref is not None
    with pytest.raises(IntegrityError):
        blobs.get(tampered.output_ref)


def test_cached_results_keep_their_inline_bytes(store: SQLiteStore) -> None:
    ref = StorageRef.inline(b"r" * 4000, "application/json")
    store.cache_put("k", "w", ref, {"method": "m"}, NOW, NOW + timedelta(hours=1))
    hit = store.cache_get("k", NOW)
    assert hit is not None
    assert hit[0] == ref
    assert hit[1] == {"method": "m"}


def test_progress_updates_leave_the_fixed_columns_alone(store: SQLiteStore) -> None:
    execution = _execution(store)
    # What update_execution writes is the execution's progress; the template, parameters,
    # context and resources are fixed at creation.
    store.update_execution(
        attrs.evolve(execution, status=ExecutionStatus.COMPLETED, parameters={"p": 2})
    )
    stored = store.get_execution("exec_1")
    assert stored.status is ExecutionStatus.COMPLETED
    assert stored.parameters == {"p": 1}
    assert stored.template == TEMPLATE


def test_the_write_ahead_log_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path)
    store._checkpointer.close()  # type: ignore[union-attr]
    store._checkpointer = WalCheckpointer(str(path), every=10, restart_every=40)
    wal = Path(f"{path}-wal")
    sizes = []
    for i in range(400):
        with store.transaction():
            store._execute("INSERT INTO payloads (data) VALUES (?)", (b"p" * 3000,))
        sizes.append(wal.stat().st_size)
        if i % 40 == 0:
            # Let the checkpointer thread finish the passes asked of it (bounded wait: under
            # a loaded machine a fixed sleep was not always enough).
            checkpointer = store._checkpointer
            deadline = time.monotonic() + 5
            while checkpointer._done < checkpointer._asked and time.monotonic() < deadline:  # type: ignore[union-attr]
                time.sleep(0.005)
    store.close()
    # Each commit appends at least one 4 KiB page: without restarts the log would have grown
    # past 400 of them. It started over and stayed well below, and every row reached the
    # database file.
    # A restarted log is rewritten from its start, not truncated: its size stops growing.
    # How far it gets between restarts depends on when the checkpointer thread gets the CPU,
    # but without restarts it would pass 400 pages.
    assert max(sizes) < 400 * 4096
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM payloads").fetchone()[0] == 400
