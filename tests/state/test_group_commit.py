"""Group commit: the writes of concurrent tasks share transactions, each stays atomic and
isolated, and callers learn their own outcome only once it is committed."""

from __future__ import annotations

import asyncio
import sqlite3
from functools import partial
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from aifactory import ConflictError
from aifactory.state import commits as commits_module
from aifactory.state.commits import GroupCommit
from aifactory.state.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "s.sqlite3")


def _insert(store: SQLiteStore, key: str) -> str:
    store._execute("INSERT INTO meta(key, value) VALUES (?, 'x')", (key,))
    return key


def _keys(path: Path) -> set[str]:
    # A second connection sees only what was committed.
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT key FROM meta WHERE value = 'x'")}


async def test_concurrent_writes_share_one_transaction(store: SQLiteStore, tmp_path: Path) -> None:
    commits = GroupCommit(store)
    results: list[str] = []

    async def write(key: str) -> None:
        results.append(await commits.commit(lambda: _insert(store, key)))

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(write, f"k{i}")
    assert sorted(results) == sorted(f"k{i}" for i in range(20))
    assert (commits.transactions, commits.writes) == (1, 20)
    assert _keys(tmp_path / "s.sqlite3") == set(results)


async def test_a_failing_write_is_undone_alone(store: SQLiteStore, tmp_path: Path) -> None:
    _insert(store, "taken")
    commits = GroupCommit(store)
    outcomes: dict[str, object] = {}

    def half_then_fail() -> None:
        _insert(store, "half")  # undone with the rest of this write
        _insert(store, "taken")  # a duplicate key: ConflictError

    async def write(name: str, fn: object) -> None:
        try:
            outcomes[name] = await commits.commit(fn)  # type: ignore[arg-type]
        except ConflictError as exc:
            outcomes[name] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(write, "one", lambda: _insert(store, "k0"))
        tg.start_soon(write, "bad", half_then_fail)
        tg.start_soon(write, "two", lambda: _insert(store, "k1"))
    assert outcomes["one"] == "k0"
    assert isinstance(outcomes["bad"], ConflictError)
    assert outcomes["two"] == "k1"
    assert commits.transactions == 1
    assert _keys(tmp_path / "s.sqlite3") == {"taken", "k0", "k1"}


async def test_writes_keep_their_order_and_see_each_other(store: SQLiteStore) -> None:
    commits = GroupCommit(store)
    seen: list[int] = []
    state = {"n": 0}

    def bump() -> int:
        state["n"] += 1  # in-memory effects apply as the transaction runs, in queue order
        seen.append(state["n"])
        return state["n"]

    queued = commits.enqueue(bump)  # waits for the next commit, and goes first
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(commits.commit, bump)
    assert queued.error is None
    assert queued.result == 1
    assert seen == [1, 2, 3, 4]
    assert commits.transactions == 1
    assert commits.commit_now(bump) == 5  # commits at once, with nothing queued


async def test_a_cancelled_caller_still_gets_its_write_committed(
    store: SQLiteStore, tmp_path: Path
) -> None:
    commits = GroupCommit(store)

    async def leader() -> None:
        await commits.commit(lambda: _insert(store, "leader"))

    async def follower(scope: anyio.CancelScope) -> None:
        with scope:
            scope.cancel()  # cancelled before its write is even committed
            await commits.commit(lambda: _insert(store, "follower"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        tg.start_soon(follower, anyio.CancelScope())
    assert _keys(tmp_path / "s.sqlite3") == {"leader", "follower"}


def _loop_turned() -> list[bool]:
    """A flag that becomes true at the event loop's next turn (and not before)."""
    turned = [False]
    asyncio.get_running_loop().call_soon(turned.__setitem__, 0, True)
    return turned


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_lone_commit_on_asyncio_skips_the_turn_nobody_needs(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commits_module, "_MAX_SKIPPED_S", 60.0)  # no slow machine turns
    commits = GroupCommit(store)
    await commits.commit(lambda: _insert(store, "first"))  # the first always turns
    # A callback that is ready is someone who might queue a write: the leader turns.
    turned = _loop_turned()
    await commits.commit(lambda: _insert(store, "with company"))
    assert turned == [True]
    # Nothing ready (a timer not yet due is not ready): committed without a turn.
    later = [False]
    asyncio.get_running_loop().call_later(0, later.__setitem__, 0, True)
    await commits.commit(lambda: _insert(store, "alone"))
    assert later == [False]
    await anyio.sleep(0.01)  # the timer's turn
    assert later == [True]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_lone_commits_still_turn_the_loop_now_and_then(store: SQLiteStore) -> None:
    commits = GroupCommit(store)
    seen = [False]
    asyncio.get_running_loop().call_later(0, seen.__setitem__, 0, True)
    start = anyio.current_time()
    count = 0
    # Back-to-back commits, never yielding otherwise: within milliseconds one of them gives
    # the loop a turn, which runs the timer.
    while not seen[0]:
        await commits.commit(partial(_insert, store, f"k{count}"))
        count += 1
        assert anyio.current_time() - start < 1.0, "the loop never got a turn"
