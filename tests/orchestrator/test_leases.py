"""Replicas sharing one store: an execution runs under one lease at a time, a replica that
lost its lease commits nothing more, and stopped or orphaned work is taken over."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from aifactory import ConflictError, PermissionDeniedError
from aifactory.models import ExecutionStatus, StageStatus
from aifactory.orchestrator.leasing import is_gone, replica_id
from aifactory.state import ExecutionWrite, PostgresStore, SQLiteStore
from aifactory.state._threaded import ThreadedStore
from tests.orchestrator.harness import Harness, Step, stage, template

pytestmark = pytest.mark.anyio

PIPELINE = template(stage("s1", "a"), stage("s2", "b", "s1"), stage("s3", "c", "s2"))


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ThreadedStore]:
    if request.param == "postgres":
        shared: ThreadedStore = PostgresStore(request.getfixturevalue("postgres_url"))
    else:
        shared = SQLiteStore(tmp_path / "state.sqlite3")
    yield shared
    await shared.aclose()


def _replica(store: ThreadedStore, name: str, gate_b: anyio.Event | None = None) -> Harness:
    b = Step("b")
    b.gate = gate_b
    return Harness([Step("a"), b, Step("c")], store=store, lease_s=5.0, owner=replica_id(name))


async def _until(check: object, timeout_s: float = 5.0) -> None:
    with anyio.fail_after(timeout_s):
        while not await check():  # type: ignore[operator]  # noqa: ASYNC110 - polls the store
            await anyio.sleep(0.01)


def test_a_replica_of_this_host_is_gone_once_its_process_is() -> None:
    assert not is_gone(replica_id())  # this very process
    host = socket.gethostname()
    assert is_gone(f"{host}:999999999:1:x")  # no such pid
    assert not is_gone("elsewhere.example:1:1:x")  # other hosts: only their lease expires


async def test_one_replica_at_a_time_runs_an_execution(store: ThreadedStore) -> None:
    gate = anyio.Event()
    a, b = _replica(store, "a", gate), _replica(store, "b")
    async with a.orchestrator, b.orchestrator:
        execution = await a.orchestrator.create(PIPELINE, {})
        await a.orchestrator.launch(execution.id)
        await _until(lambda: _status(store, execution.id, "s2", StageStatus.RUNNING))
        with pytest.raises(ConflictError, match="another process") as caught:
            await b.orchestrator.run(execution.id)
        assert caught.value.details["owner"] == a.orchestrator.owner
        await b.orchestrator.launch(execution.id)  # "make sure it runs": it does, in a
        assert await b.orchestrator.recover_now() == []  # a's lease is live
        lease = await store.lease_of(execution.id)
        assert (lease.owner, lease.runnable) == (a.orchestrator.owner, True)
        gate.set()
        final = await a.orchestrator.wait(execution.id)
    assert final.status is ExecutionStatus.COMPLETED
    lease = await store.lease_of(execution.id)
    assert (lease.owner, lease.runnable) == (None, False)  # finished: nobody holds it


async def test_a_replica_that_lost_its_lease_commits_nothing_more(store: ThreadedStore) -> None:
    gate = anyio.Event()
    a, b = _replica(store, "a", gate), _replica(store, "b")
    async with a.orchestrator, b.orchestrator:
        execution = await a.orchestrator.create(PIPELINE, {})
        await a.orchestrator.launch(execution.id)
        await _until(lambda: _status(store, execution.id, "s2", StageStatus.RUNNING))
        # a is paused past its lease (it renews nothing: its clock stands still); b's clock
        # says the lease has expired, and b takes the execution over.
        b.clock.advance(timedelta(seconds=60))
        assert await b.orchestrator.recover_now() == [execution.id]
        final = await b.orchestrator.wait(execution.id)
        assert final.status is ExecutionStatus.COMPLETED
        gate.set()  # a's stage finishes now; its commit is fenced off
        with anyio.fail_after(5):
            await a.orchestrator.wait(execution.id)
    assert [r.execution.id for r in b.sink.reports] == [execution.id]
    assert a.sink.reports == []  # a reported nothing
    runs = {r.stage_id: r for r in await store.get_stage_runs(execution.id)}
    assert {r.status for r in runs.values()} == {StageStatus.SUCCEEDED}
    assert runs["s1"].attempt == 1  # committed before the takeover: not run again
    assert runs["s2"].attempt == 2  # in flight at the takeover: run once more, by b
    events = [e.kind for e in await store.list_events(execution.id)]
    assert events.count("execution.completed") == 1
    assert events.count("stage.succeeded") == 3


async def test_a_stopping_replica_hands_its_work_back(store: ThreadedStore) -> None:
    gate = anyio.Event()
    a, b = _replica(store, "a", gate), _replica(store, "b")
    async with b.orchestrator:
        async with a.orchestrator:
            execution = await a.orchestrator.create(PIPELINE, {})
            await a.orchestrator.launch(execution.id)
            await _until(lambda: _status(store, execution.id, "s2", StageStatus.RUNNING))
        # a stopped (its lease handed back, the execution still runnable): b takes it at once.
        lease = await store.lease_of(execution.id)
        assert (lease.owner, lease.runnable) == (None, True)
        assert await b.orchestrator.recover_now() == [execution.id]
        final = await b.orchestrator.wait(execution.id)
    assert final.status is ExecutionStatus.COMPLETED


async def test_leases_are_renewed_while_the_work_lasts(store: ThreadedStore) -> None:
    slow = Step("b", delay_s=0.8)
    a = Harness([Step("a"), slow, Step("c")], store=store, lease_s=0.3, owner=replica_id("a"))
    b = _replica(store, "b")
    async with a.orchestrator, b.orchestrator:
        execution = await a.orchestrator.create(PIPELINE, {})
        await a.orchestrator.launch(execution.id)
        # Both clocks follow real time; b looks for orphans all along. The work outlasts
        # a's lease more than twice: only a's renewals keep b from taking it over.
        while a.orchestrator.is_running(execution.id):
            await anyio.sleep(0.05)
            for replica in (a, b):
                replica.clock.advance(timedelta(seconds=0.05))
            assert await b.orchestrator.recover_now() == []
        final = await a.orchestrator.wait(execution.id)
    assert final.status is ExecutionStatus.COMPLETED
    assert slow.calls == [1]


async def test_an_orphan_of_a_dead_process_is_resumed_at_once(store: ThreadedStore) -> None:
    a = _replica(store, "a")
    async with a.orchestrator:
        execution = await a.orchestrator.create(PIPELINE, {})
    # As a process of this host that died mid-run would have left it: runnable, leased for
    # a long time yet, by a pid that no longer exists.
    dead = f"{socket.gethostname()}:999999999:1:dead"
    await store.writer.write(
        lambda db: db._execute(
            "UPDATE executions SET runnable = ?, owner = ?, lease_token = 7, "
            "lease_expires_at = '2999-01-01T00:00:00+00:00' WHERE id = ?",
            (True, dead, execution.id),
        )
    )
    b = _replica(store, "b")
    async with b.orchestrator:
        assert await b.orchestrator.recover_now() == [execution.id]
        final = await b.orchestrator.wait(execution.id)
    assert final.status is ExecutionStatus.COMPLETED
    assert (await store.lease_of(execution.id)).token == 8


async def _status(
    store: ThreadedStore, execution_id: str, stage_id: str, want: StageStatus
) -> bool:
    runs = {r.stage_id: r for r in await store.get_stage_runs(execution_id)}
    return runs[stage_id].status is want


async def test_staff_see_which_replica_runs_what(tmp_path: Path) -> None:
    from aifactory import AsyncFactory
    from aifactory.models import Execution
    from aifactory.state import Claim
    from tests.helpers import fast_config, setup_people

    config = fast_config(tmp_path, recover=False)
    async with AsyncFactory.embedded(config=config) as factory:
        people = await setup_people(factory)
        runtime = factory._runtime
        assert runtime is not None
        store, now = runtime.store, config.clock.now()
        alive, dead = replica_id("elsewhere"), f"{socket.gethostname()}:999999999:1:x"
        for name, owner in (("e_run", alive), ("e_gone", dead), ("e_wait", None)):
            execution = Execution(name, None, None, PIPELINE, {}, ExecutionStatus.RUNNING, now, now)
            await store.add_execution(execution, [], runnable=owner is None)
            if owner is not None:
                claim = Claim(owner, 0, now + timedelta(seconds=30))
                await store.record(ExecutionWrite(name, claim=claim))
        owners = await people.admin.executions.owners()
        assert [(o.execution_id, o.state, o.owner) for o in owners] == [
            ("e_gone", "interrupted", dead),  # equal creation times: by id
            ("e_run", "running", alive),
            ("e_wait", "waiting", None),
        ]
        with pytest.raises(PermissionDeniedError):
            await people.ana.executions.owners()
