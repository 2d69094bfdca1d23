"""The `Store` conformance suite: every backend (SQLite in memory, SQLite file, PostgreSQL)
must pass it, on asyncio and trio."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from aifactory import (
    ConflictError,
    LeaseLostError,
    NotFoundError,
    QuotaExceededError,
    StaleAttemptError,
    StorageError,
)
from aifactory.models import (
    Checkpoint,
    Client,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    Role,
    StageRun,
    StageSpec,
    StageStatus,
    StorageRef,
    Template,
    Tier,
    User,
)
from aifactory.state import CacheEntry, Claim, ExecutionWrite, PostgresStore, SQLiteStore
from aifactory.state._threaded import ThreadedStore

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
TEMPLATE = Template("t", "T", "", "x", (Tier.BASIC,), (StageSpec("a", "w"), StageSpec("b", "w")))


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ThreadedStore]:
    if request.param == "postgres":
        opened: ThreadedStore = PostgresStore(request.getfixturevalue("postgres_url"))
    elif request.param == "sqlite-file":
        opened = SQLiteStore(tmp_path / "s.sqlite3")
    else:
        opened = SQLiteStore(":memory:")
    yield opened
    await opened.aclose()


async def _sql(store: ThreadedStore, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Raw SQL on the writer's connection (to tamper, or to look underneath)."""

    def run(db: Any) -> list[Any]:
        cursor = db._execute(sql, params)
        return [] if cursor.description is None else list(cursor.fetchall())

    return await store.writer.write(run)


async def _client(store: ThreadedStore) -> Client:
    client = Client("cli_1", "Acme", Tier.BASIC, Decimal("10"), Decimal(0), "2026-03", NOW)
    await store.add_client(client)
    return client


async def _execution(store: ThreadedStore) -> Execution:
    execution = Execution(
        "exec_1", None, None, TEMPLATE, {}, ExecutionStatus.RUNNING, NOW, NOW, stages_total=2
    )
    runs = [StageRun("exec_1", s.id, "w", StageStatus.PENDING) for s in TEMPLATE.stages]
    await store.add_execution(execution, runs)
    return execution


async def _run(store: ThreadedStore, stage: str) -> StageRun:
    [run] = [r for r in await store.get_stage_runs("exec_1") if r.stage_id == stage]
    return run


async def test_models_round_trip_exactly(store: ThreadedStore) -> None:
    client = await _client(store)
    assert await store.get_client("cli_1") == client
    execution = await _execution(store)
    assert await store.get_execution("exec_1") == execution
    with pytest.raises(NotFoundError):
        await store.get_request("req_missing")
    with pytest.raises(ConflictError):  # names are case-blind
        await store.add_client(attrs.evolve(client, id="cli_2", name="ACME"))


async def test_taken_names_and_emails_are_conflicts_in_words(store: ThreadedStore) -> None:
    client = await _client(store)
    with pytest.raises(ConflictError) as name:
        await store.add_client(attrs.evolve(client, id="cli_2", name="aCME"))
    assert (name.value.message, name.value.details) == (
        "a client named 'aCME' already exists",
        {"name": "aCME"},
    )
    user = User("usr_1", "ana@acme.example", Role.CLIENT, "cli_1", NOW)
    await store.add_user(user, "hash")
    async with store.transaction() as tx:  # inside a transaction too, which stays usable
        with pytest.raises(ConflictError) as email:
            await tx.add_user(attrs.evolve(user, id="usr_2"), "hash")
        await tx.add_user(attrs.evolve(user, id="usr_3", email="bob@acme.example"), "hash")
    assert (email.value.message, email.value.details) == (
        "a user with email ana@acme.example already exists",
        {"email": "ana@acme.example"},
    )
    assert [u.id for u in await store.list_users()] == ["usr_1", "usr_3"]


async def test_stage_commits_are_fenced_on_the_attempt(store: ThreadedStore) -> None:
    execution = await _execution(store)
    first = attrs.evolve(await _run(store, "a"), status=StageStatus.RUNNING, attempt=1)
    await store.record(ExecutionWrite("exec_1", started=(first,)))
    second = attrs.evolve(first, attempt=2)
    await store.record(ExecutionWrite("exec_1", started=(second,)))  # attempt 1 replaced
    with pytest.raises(StaleAttemptError):
        await store.record(ExecutionWrite("exec_1", started=(first,)))
    ref = StorageRef.inline(b"{}")
    done = attrs.evolve(first, status=StageStatus.SUCCEEDED, output_ref=ref)
    event = ExecutionEvent("exec_1", 1, NOW, "stage.succeeded", "a")
    checkpoint = Checkpoint("exec_1", 1, {"a": ref}, NOW)
    stale = ExecutionWrite(
        "exec_1",
        finished=done,
        totals=attrs.evolve(execution, stages_done=1),
        checkpoint=checkpoint,
        events=(event,),
    )
    with pytest.raises(StaleAttemptError):
        await store.record(stale)
    # Nothing of the stale commit was written.
    assert await store.latest_checkpoint("exec_1") is None
    assert await store.list_events("exec_1") == []
    assert (await store.get_execution("exec_1")).stages_done == 0
    await store.record(attrs.evolve(stale, finished=attrs.evolve(done, attempt=2)))
    assert await store.latest_checkpoint("exec_1") == checkpoint
    assert (await store.get_execution("exec_1")).stages_done == 1
    assert await store.last_event_seq("exec_1") == 1
    with pytest.raises(StaleAttemptError):  # committing twice
        await store.record(ExecutionWrite("exec_1", finished=attrs.evolve(done, attempt=2)))


async def test_a_failed_transaction_leaves_nothing_behind(store: ThreadedStore) -> None:
    async def crash_mid_transaction() -> None:
        async with store.transaction() as tx:
            await _client(tx)  # type: ignore[arg-type]
            assert len(await tx.list_clients()) == 1  # seen inside
            raise RuntimeError("crash mid-transaction")

    with pytest.raises(RuntimeError, match="mid-transaction"):
        await crash_mid_transaction()
    assert await store.list_clients() == []
    async with store.transaction() as tx:
        await _client(tx)  # type: ignore[arg-type]
    assert len(await store.list_clients()) == 1


async def test_calling_the_store_inside_its_own_transaction_is_refused(
    store: ThreadedStore,
) -> None:
    # Waiting for its own transaction to end would hang: it fails at once instead.
    async with store.transaction():
        with pytest.raises(RuntimeError, match="transaction"):
            await store.list_clients()


async def test_the_audit_log_is_append_only(store: ThreadedStore) -> None:
    event = await store.append_audit(NOW, "system", "x", "t", "ok", {"a": 1})
    assert await store.list_audit() == [event]
    for sql in ("UPDATE audit SET actor = 'me'", "DELETE FROM audit"):
        with pytest.raises(ConflictError, match="append-only"):
            await _sql(store, sql)
    assert await store.list_audit() == [event]


async def test_charges_once_per_execution_and_resets_monthly(store: ThreadedStore) -> None:
    await _client(store)
    assert await store.charge("cli_1", "exec_1", Decimal("1.25"), NOW)
    assert not await store.charge("cli_1", "exec_1", Decimal("1.25"), NOW)
    assert (await store.get_client("cli_1")).used_this_month_usd == Decimal("1.25")
    april = NOW + timedelta(hours=2)
    assert await store.charge("cli_1", "exec_2", Decimal("0.5"), april)
    client = await store.get_client("cli_1")
    assert (client.month, client.used_this_month_usd) == ("2026-04", Decimal("0.5"))


async def test_concurrent_admissions_and_charges_from_many_connections_never_overspend(
    store: ThreadedStore, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # As many processes would: each its own store (its own connections) on one database.
    if request.node.callspec.params["store"] == "sqlite-memory":
        pytest.skip("an in-memory database has one connection only")
    await _client(store)  # a budget of 10 USD
    url = (
        request.getfixturevalue("postgres_url")
        if isinstance(store, PostgresStore)
        else tmp_path / "s.sqlite3"
    )
    others = [PostgresStore(url) if isinstance(store, PostgresStore) else SQLiteStore(url)]
    others += [type(others[0])(url) for _ in range(5)]
    admitted: list[str] = []
    try:

        async def admit(n: int) -> None:
            try:
                await others[n % len(others)].admit("cli_1", f"exec_{n}", Decimal("0.75"), NOW)
            except QuotaExceededError:
                return
            admitted.append(f"exec_{n}")

        async def charge(n: int) -> None:
            await others[n % len(others)].charge("cli_1", f"done_{n}", Decimal("0.01"), NOW)

        async with anyio.create_task_group() as tg:
            for n in range(48):
                tg.start_soon(charge, n)  # 0.48 used in all: not one charge lost
        assert (await store.get_client("cli_1")).used_this_month_usd == Decimal("0.48")
        async with anyio.create_task_group() as tg:
            for n in range(48):
                tg.start_soon(admit, n)
        assert len(admitted) == 12  # 12 * 0.75 = 9 of the 9.52 left
        assert await store.reserved_usd("cli_1") == Decimal("9.00")
    finally:
        for other in others:
            await other.aclose()


async def test_an_executions_stages_draw_on_its_admission_hold(store: ThreadedStore) -> None:
    await _client(store)  # a budget of 10 USD
    assert await store.admit("cli_1", "exec_a", Decimal("6"), NOW) == Decimal("6")
    with pytest.raises(QuotaExceededError) as refused:
        await store.admit("cli_1", "exec_b", Decimal("5"), NOW)
    assert refused.value.details["remaining_usd"] == "4"
    # Stages within the admitted estimate need no more budget ...
    await store.reserve("cli_1", "exec_a", "s1", Decimal("3"), NOW)
    await store.reserve("cli_1", "exec_a", "s2", Decimal("3"), NOW)
    assert await store.reserved_usd("cli_1") == Decimal("6")
    # ... one beyond it takes what nobody else holds, and no more.
    await store.reserve("cli_1", "exec_a", "s3", Decimal("4"), NOW)
    assert await store.reserved_usd("cli_1") == Decimal("10")
    with pytest.raises(QuotaExceededError):
        await store.reserve("cli_1", "exec_a", "s4", Decimal("0.01"), NOW)
    await store.release("exec_a", "s3")
    assert await store.reserved_usd("cli_1") == Decimal("6")
    # A retry is held for its estimate less what it was charged already.
    await store.release("exec_a")
    await store.charge("cli_1", "exec_a", Decimal("2"), NOW)
    assert await store.admit("cli_1", "exec_a", Decimal("6"), NOW) == Decimal("4")
    assert await store.reserved_usd("cli_1") == Decimal("4")


async def _succeed(store: ThreadedStore, stage: str, version: int, data: bytes) -> StorageRef:
    running = attrs.evolve(await _run(store, stage), status=StageStatus.RUNNING, attempt=version)
    ref = StorageRef.inline(data)
    done = attrs.evolve(running, status=StageStatus.SUCCEEDED, output_ref=ref)
    checkpoint = Checkpoint("exec_1", version, {stage: ref}, NOW)
    await store.record(
        ExecutionWrite("exec_1", started=(running,), finished=done, checkpoint=checkpoint)
    )
    return ref


async def _stage_commit(
    store: ThreadedStore, stage: str, attempt: int, token: int
) -> ExecutionWrite:
    """What the orchestrator commits when stage `stage` succeeds: its outcome (a few-KB
    output), the totals, a checkpoint, two events and the next stage's first attempt (with a
    few-KB input), fenced by the lease."""
    execution = await store.get_execution("exec_1")
    output = StorageRef.inline(b"o" * 3000 + stage.encode())
    done = attrs.evolve(await _run(store, stage), status=StageStatus.SUCCEEDED, output_ref=output)
    following = attrs.evolve(
        await _run(store, "b"),
        status=StageStatus.RUNNING,
        attempt=attempt,
        input_ref=StorageRef.inline(b"i" * 3000 + stage.encode()),
    )
    seq = await store.last_event_seq("exec_1")
    return ExecutionWrite(
        "exec_1",
        started=(following,),
        finished=done,
        totals=attrs.evolve(execution, stages_done=execution.stages_done + 1),
        checkpoint=Checkpoint("exec_1", seq + 1, {stage: output}, NOW),
        events=(
            ExecutionEvent("exec_1", seq + 1, NOW, "stage.succeeded", stage),
            ExecutionEvent("exec_1", seq + 2, NOW, "stage.started", "b"),
        ),
        lease=token,
    )


async def test_a_stage_commit_costs_at_most_two_round_trips(store: ThreadedStore) -> None:
    await _execution(store)
    running = attrs.evolve(
        await _run(store, "a"),
        status=StageStatus.RUNNING,
        attempt=1,
        input_ref=StorageRef.inline(b"i" * 3000),  # takes a block of payload ids first
    )
    claim = Claim("me", 0, NOW + timedelta(minutes=1))
    await store.record(ExecutionWrite("exec_1", started=(running,), claim=claim))
    write = await _stage_commit(store, "a", 1, claim.token + 1)
    before = (store.round_trips, store.statements)
    await store.record(write)
    if isinstance(store, PostgresStore):
        assert store.round_trips - before[0] == 2  # the pipeline, then COMMIT
    else:
        assert store.round_trips == 0  # in process
    assert store.statements - before[1] >= 8  # the statements themselves all ran
    # And it was all written, each payload once.
    assert (await _run(store, "b")).input_ref == StorageRef.inline(b"i" * 3000 + b"a")
    assert (await _run(store, "a")).output_ref == StorageRef.inline(b"o" * 3000 + b"a")
    assert [e.kind for e in await store.list_events("exec_1")] == [
        "stage.succeeded",
        "stage.started",
    ]
    assert (await _sql(store, "SELECT COUNT(*) FROM payloads"))[0][0] == 3


async def test_fences_in_a_group_of_commits_undo_only_the_stale_one(
    store: ThreadedStore,
) -> None:
    """Commits grouped into one transaction, one of them stale: the stale one raises and
    writes nothing; the others commit (on PostgreSQL, each fenced in its own pipeline)."""
    await _execution(store)
    running = attrs.evolve(await _run(store, "a"), status=StageStatus.RUNNING, attempt=1)
    await store.record(ExecutionWrite("exec_1", started=(running,)))
    outcomes: dict[int, BaseException | None] = {}

    async def commit(i: int) -> None:
        event = ExecutionEvent("exec_1", 10 + i, NOW, "note", None)
        # Write 0 replays attempt 1's start: stale. The others only add events.
        write = ExecutionWrite("exec_1", started=(running,) if i == 0 else (), events=(event,))
        try:
            await store.record(write)
        except StaleAttemptError as exc:
            outcomes[i] = exc
        else:
            outcomes[i] = None

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(commit, i)
    assert isinstance(outcomes.pop(0), StaleAttemptError)
    assert outcomes == dict.fromkeys(range(1, 6))
    assert [e.seq for e in await store.list_events("exec_1")] == [11, 12, 13, 14, 15]


async def test_the_latest_checkpoint_folds_the_versions(store: ThreadedStore) -> None:
    await _execution(store)
    a = await _succeed(store, "a", 1, b'{"a": 1}')
    b = await _succeed(store, "b", 2, b'{"b": 2}')
    checkpoint = await store.latest_checkpoint("exec_1")
    assert checkpoint is not None
    assert (checkpoint.version, checkpoint.completed) == (2, {"a": a, "b": b})
    rows = await _sql(store, "SELECT version, completed FROM checkpoints ORDER BY version")
    assert [len(r[1]) < 200 for r in rows] == [True, True]  # each holds only its own


async def test_large_inline_bytes_are_written_once_and_read_back(store: ThreadedStore) -> None:
    await _execution(store)
    data = b"x" * 20_000
    await _succeed(store, "a", 1, data)
    # The stage run and the checkpoint share one payload row.
    assert (await _sql(store, "SELECT COUNT(*) FROM payloads"))[0][0] == 1
    assert (await _run(store, "a")).output_ref == StorageRef.inline(data)
    checkpoint = await store.latest_checkpoint("exec_1")
    assert checkpoint is not None
    assert checkpoint.completed["a"] == StorageRef.inline(data)


async def test_cached_results_keep_their_inline_bytes(store: ThreadedStore) -> None:
    await _execution(store)
    ref = StorageRef.inline(b"y" * 5000)
    entry = CacheEntry("k", "w", ref, {"method": "m"}, NOW, NOW + timedelta(hours=1))
    await store.record(ExecutionWrite("exec_1", cache=entry))
    assert await store.cache_get("k", NOW) == (ref, {"method": "m"})
    assert await store.cache_get("k", NOW + timedelta(hours=2)) is None  # expired


async def test_concurrent_writes_commit_in_groups(store: ThreadedStore) -> None:
    before = store.writer.transactions
    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(store.append_audit, NOW, "me", "x", f"t{i}", "ok", {})
    assert len(await store.list_audit(limit=100)) == 50
    assert store.writer.transactions - before < 50


async def test_a_failing_write_in_a_group_is_undone_alone(store: ThreadedStore) -> None:
    await _client(store)
    outcomes: dict[str, BaseException | None] = {}

    async def add(name: str) -> None:
        client = Client(f"cli_{name}", name, Tier.BASIC, Decimal(1), Decimal(0), "2026-03", NOW)
        try:
            await store.add_client(client)
        except ConflictError as exc:
            outcomes[name] = exc
        else:
            outcomes[name] = None

    async with anyio.create_task_group() as tg:
        for name in ("B", "acme", "C", "D"):
            tg.start_soon(add, name)
    assert isinstance(outcomes.pop("acme"), ConflictError)
    assert outcomes == {"B": None, "C": None, "D": None}
    assert sorted(c.name for c in await store.list_clients()) == ["Acme", "B", "C", "D"]


async def test_a_newer_schema_is_refused(store: ThreadedStore, tmp_path: Path) -> None:
    await _sql(store, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    reopen: Any
    if isinstance(store, PostgresStore):
        url = store.writer.database.url  # type: ignore[attr-defined]
        reopen = lambda: PostgresStore(url)  # noqa: E731
    elif store.path == ":memory:":  # type: ignore[attr-defined]
        return  # nothing to reopen
    else:
        reopen = lambda: SQLiteStore(store.path)  # type: ignore[attr-defined]  # noqa: E731
    with pytest.raises(StorageError, match="upgrade aifactory"):
        reopen()


def test_an_unopenable_database_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        SQLiteStore(tmp_path / "missing-folder" / "s.sqlite3")
    with pytest.raises(StorageError, match="cannot connect"):
        PostgresStore("postgresql://nobody@127.0.0.1:9/nothing")


async def test_a_lock_held_by_another_process_delays_only_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path, busy_timeout_s=0.3)
    try:
        await _client(store)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's write lock
        try:
            started = time.perf_counter()
            assert (await store.get_client("cli_1")).name == "Acme"
            assert time.perf_counter() - started < 0.2  # reads are not held up
            with pytest.raises(StorageError) as caught:
                await store.append_audit(NOW, "me", "x", "t", "ok", {})
            assert caught.value.status == 503
            assert caught.value.details["retry_after_s"] >= 1
        finally:
            other.execute("ROLLBACK")
            other.close()
        await store.append_audit(NOW, "me", "x", "t", "ok", {})  # the lock is free again
    finally:
        await store.aclose()


def test_the_database_file_is_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    SQLiteStore(path).close()
    assert path.stat().st_mode & 0o077 == 0


async def test_leases_are_claimed_once_renewed_fenced_and_handed_back(
    store: ThreadedStore,
) -> None:
    execution = await _execution(store)
    later = NOW + timedelta(seconds=30)
    lease = await store.lease_of("exec_1")
    assert (lease.owner, lease.token, lease.runnable) == (None, 0, False)
    await store.record(ExecutionWrite("exec_1", claim=Claim("r1", 0, later)))
    with pytest.raises(LeaseLostError):  # the same token again: taken already
        await store.record(ExecutionWrite("exec_1", claim=Claim("r2", 0, later)))
    lease = await store.lease_of("exec_1")
    assert (lease.owner, lease.token, lease.runnable) == ("r1", 1, True)
    assert lease.expires_at == later
    # Commits are fenced by the token; a stale one writes nothing.
    event = ExecutionEvent("exec_1", 1, NOW, "x", None)
    with pytest.raises(LeaseLostError):
        await store.record(ExecutionWrite("exec_1", events=(event,), lease=0))
    assert await store.list_events("exec_1") == []
    await store.record(ExecutionWrite("exec_1", events=(event,), lease=1))
    # Held and live: nobody else claims it; expired: the next replica does.
    assert await store.claim_ready("r2", NOW, later, 10) == []
    assert await store.renew_leases("r1", {"exec_1": 1}, later + timedelta(hours=1)) == []
    after = later + timedelta(minutes=1)
    assert await store.claim_ready("r2", after, after + timedelta(seconds=30), 10) == []
    much_later = later + timedelta(hours=2)
    claimed = await store.claim_ready("r2", much_later, much_later, 10)
    assert claimed == [("exec_1", 2)]
    assert await store.renew_leases("r1", {"exec_1": 1}, much_later) == ["exec_1"]
    # Handed back, it stays runnable for anyone; finished, nobody holds it.
    await store.release_leases("r2", {"exec_1": 2})
    lease = await store.lease_of("exec_1")
    assert (lease.owner, lease.runnable) == (None, True)
    assert await store.claim_ready("r3", NOW, later, 10, dead=()) == [("exec_1", 3)]
    # Finished, it stays held until reported (a replica dying in between leaves it to be
    # reported by another); reported, nobody need take it up again.
    done = attrs.evolve(execution, status=ExecutionStatus.COMPLETED, finished_at=NOW)
    await store.record(ExecutionWrite("exec_1", execution=done, lease=3))
    lease = await store.lease_of("exec_1")
    assert (lease.owner, lease.runnable, lease.status) == ("r3", True, ExecutionStatus.COMPLETED)
    await store.release_leases("r3", {"exec_1": 3}, finished=True)
    lease = await store.lease_of("exec_1")
    assert (lease.owner, lease.runnable) == (None, False)
    assert await store.list_leases() == []


async def test_claim_ready_takes_from_dead_owners_and_respects_its_limit(
    store: ThreadedStore,
) -> None:
    await _execution(store)
    for n in (2, 3):
        other = Execution(f"exec_{n}", None, None, TEMPLATE, {}, ExecutionStatus.PENDING, NOW, NOW)
        await store.add_execution(other, [])
    far = NOW + timedelta(days=1)
    for n, owner in ((1, "alive"), (2, "dead"), (3, "alive")):
        await store.record(ExecutionWrite(f"exec_{n}", claim=Claim(owner, 0, far)))
    assert await store.claim_ready("me", NOW, far, 10, dead=["dead"]) == [("exec_2", 2)]
    await store.release_leases("alive", {"exec_1": 1, "exec_3": 1})
    assert await store.claim_ready("me", NOW, far, 1) == [("exec_1", 2)]  # oldest first
    assert len(await store.list_leases()) == 3


async def test_claim_ready_leaves_out_what_the_caller_excludes(store: ThreadedStore) -> None:
    await _execution(store)
    far = NOW + timedelta(days=1)
    await store.record(ExecutionWrite("exec_1", claim=Claim("a", 0, far)))
    await store.release_leases("a", {"exec_1": 1})
    assert await store.claim_ready("me", NOW, far, 10, exclude=["exec_1"]) == []
    assert await store.claim_ready("me", NOW, far, 10, exclude=["other"]) == [("exec_1", 2)]
