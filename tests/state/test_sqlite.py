"""The SQLite store: atomic fenced stage commits, append-only audit, idempotent charges."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from aifactory import ConflictError, NotFoundError, StaleAttemptError, StorageError
from aifactory.models import (
    Checkpoint,
    Client,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    StageRun,
    StageSpec,
    StageStatus,
    StorageRef,
    Template,
    Tier,
)
from aifactory.state.sqlite import SQLiteStore

NOW = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
TEMPLATE = Template("t", "T", "", "x", (Tier.BASIC,), (StageSpec("a", "w"), StageSpec("b", "w")))


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(":memory:" if request.param == "memory" else tmp_path / "s.sqlite3")


def _client(store: SQLiteStore) -> Client:
    client = Client("cli_1", "Acme", Tier.BASIC, Decimal("10"), Decimal(0), "2026-03", NOW)
    store.add_client(client)
    return client


def _execution(store: SQLiteStore) -> Execution:
    execution = Execution(
        "exec_1", None, None, TEMPLATE, {}, ExecutionStatus.RUNNING, NOW, NOW, stages_total=2
    )
    store.add_execution(
        execution, [StageRun("exec_1", s.id, "w", StageStatus.PENDING) for s in TEMPLATE.stages]
    )
    return execution


def test_models_round_trip_exactly(store: SQLiteStore) -> None:
    client = _client(store)
    assert store.get_client("cli_1") == client
    execution = _execution(store)
    assert store.get_execution("exec_1") == execution
    with pytest.raises(NotFoundError):
        store.get_request("req_missing")
    with pytest.raises(ConflictError):
        store.add_client(attrs.evolve(client, id="cli_2", name="ACME"))  # names are case-blind


def test_stage_commits_are_fenced_on_the_attempt(store: SQLiteStore) -> None:
    execution = _execution(store)
    [run_a, _] = sorted(store.get_stage_runs("exec_1"), key=lambda r: r.stage_id)
    first = attrs.evolve(run_a, status=StageStatus.RUNNING, attempt=1)
    store.start_stage(first)
    second = attrs.evolve(first, attempt=2)
    store.start_stage(second)  # attempt 1 timed out and was replaced
    with pytest.raises(StaleAttemptError):
        store.start_stage(first)
    ref = StorageRef.inline(b"{}")
    done = attrs.evolve(first, status=StageStatus.SUCCEEDED, output_ref=ref)
    event = ExecutionEvent("exec_1", 1, NOW, "stage.succeeded", "a")
    checkpoint = Checkpoint("exec_1", 1, {"a": ref}, NOW)
    with pytest.raises(StaleAttemptError):
        store.finish_stage(done, attrs.evolve(execution, stages_done=1), checkpoint, [event])
    # Nothing of the stale commit was written.
    assert store.latest_checkpoint("exec_1") is None
    assert store.list_events("exec_1") == []
    assert store.get_execution("exec_1").stages_done == 0
    store.finish_stage(
        attrs.evolve(done, attempt=2), attrs.evolve(execution, stages_done=1), checkpoint, [event]
    )
    assert store.latest_checkpoint("exec_1") == checkpoint
    assert store.get_execution("exec_1").stages_done == 1
    with pytest.raises(StaleAttemptError):  # committing twice
        store.finish_stage(attrs.evolve(done, attempt=2), execution, None)


def test_a_failed_transaction_leaves_nothing_behind(store: SQLiteStore) -> None:
    def crash_mid_transaction() -> None:
        with store.transaction():
            _client(store)
            raise RuntimeError("crash mid-transaction")

    with pytest.raises(RuntimeError):
        crash_mid_transaction()
    assert store.list_clients() == []


def test_the_audit_log_is_append_only(store: SQLiteStore) -> None:
    event = store.append_audit(NOW, "system", "x", "t", "ok", {"a": 1})
    assert store.list_audit() == [event]
    for sql in ("UPDATE audit SET actor = 'me'", "DELETE FROM audit"):
        with pytest.raises(ConflictError, match="append-only"):
            store._execute(sql)
    assert store.list_audit() == [event]


def test_charges_once_per_execution_and_resets_monthly(store: SQLiteStore) -> None:
    _client(store)
    assert store.charge("cli_1", "exec_1", Decimal("1.25"), NOW)
    assert not store.charge("cli_1", "exec_1", Decimal("1.25"), NOW)
    assert store.get_client("cli_1").used_this_month_usd == Decimal("1.25")
    april = NOW + timedelta(hours=2)
    assert store.charge("cli_1", "exec_2", Decimal("0.5"), april)
    client = store.get_client("cli_1")
    assert (client.month, client.used_this_month_usd) == ("2026-04", Decimal("0.5"))


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StorageError, match="upgrade aifactory"):
        SQLiteStore(path)


def test_an_unopenable_database_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        SQLiteStore(tmp_path / "missing-folder" / "s.sqlite3")
