"""`GroupCommit`: one transaction for the writes of every task that is ready to commit.

Many executions running on one event loop each commit twice per stage. Committed one by one,
every commit pays for its own transaction; here the first task to commit becomes the
*leader*: it yields once, so that every other task ready to run gets to queue its write, then
commits the whole queue in one transaction and wakes the others. With a single execution
nothing else is ready to run: on asyncio the leader then commits without yielding (at most
for `_MAX_SKIPPED_S` in a row), elsewhere after one turn of the event loop.

A write is a function run inside the transaction, in queue order. It computes its rows from
the in-memory state it is given when it runs (so a write queued after another sees the
first one's effect) and applies its own in-memory effects once its statements succeeded.
Each write runs in a savepoint: one that raises (a stale attempt, say) is undone alone, its
caller gets the error, and the others still commit. `commit` returns only when the
transaction is durable (WAL, `synchronous=NORMAL`: safe from a process crash), so a stage is
acknowledged to its worker only after its commit.

If the COMMIT itself fails (disk full, I/O error), every caller in the batch gets the error;
writes that already applied in-memory effects then disagree with the store, so their callers
must treat the error as fatal for what they run (the orchestrator fails the execution, which
resumes from the store).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from ._db import Database

__all__ = ["GroupCommit", "PendingWrite"]

T = TypeVar("T")


class PendingWrite(Generic[T]):
    """A queued write: once its transaction ran, its `result` or its `error`."""

    __slots__ = ("done", "error", "result", "write")

    def __init__(self, write: Callable[[], T]) -> None:
        self.write = write
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done: anyio.Event | None = None


#: The longest a task committing on its own goes without a turn of the loop, in seconds.
_MAX_SKIPPED_S = 0.002


class GroupCommit:
    """Batches writes of concurrent tasks into one transaction per turn of the event loop.

    Use from one event loop (the queue is not shared between threads; the database is).
    """

    def __init__(self, database: Database) -> None:
        self._db = database
        self._queue: list[PendingWrite[Any]] = []
        self._leading = False
        self._turned_at = 0.0
        #: Transactions committed and writes in them, for tests and benchmarks.
        self.transactions = 0
        self.writes = 0

    async def commit(self, write: Callable[[], T]) -> T:
        """Run `write` in the next group transaction; return its result once committed.

        Raises what `write` raised (its statements undone) or what the commit raised. Once
        queued, the write is committed even if the caller is cancelled meanwhile; the
        cancellation is delivered after the commit, as it would be after a synchronous one.
        """
        item = PendingWrite(write)
        self._queue.append(item)
        if self._leading:
            item.done = anyio.Event()
            with anyio.CancelScope(shield=True):
                await item.done.wait()
        else:
            self._leading = True
            try:
                # One turn of the loop, so that the tasks that are ready queue their writes;
                # skipped when none is (see `_turn_needed`).
                if self._turn_needed():
                    await anyio.lowlevel.cancel_shielded_checkpoint()
                self._flush()
            finally:
                self._leading = False
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    def _turn_needed(self) -> bool:
        """Whether the leader should give the loop a turn before it commits.

        A turn lets the tasks that are ready queue their writes into this transaction. On
        asyncio, when no callback is ready to run, nobody could queue one: a turn would only
        poll for I/O (about 15 µs, several times per stage of a pipeline running alone), so
        it is skipped, though never for more than `_MAX_SKIPPED_S` in a row, which keeps I/O
        served while in-process stages commit back to back. Elsewhere (trio, an event loop
        without asyncio's ready queue) there is always a turn.
        """
        now = time.monotonic()
        if now - self._turned_at < _MAX_SKIPPED_S:
            try:
                ready = getattr(asyncio.get_running_loop(), "_ready", None)
            except RuntimeError:  # not asyncio
                ready = None
            if ready is not None and not ready:
                return False
        self._turned_at = now
        return True

    def enqueue(self, write: Callable[[], T]) -> PendingWrite[T]:
        """Queue `write` for the next group transaction without waiting for it.

        For writes whose durability can wait for the caller's next `commit`, which commits
        everything queued before it, in order. The returned handle tells, once that has
        happened, whether `write` failed.
        """
        item = PendingWrite(write)
        self._queue.append(item)
        return item

    def commit_now(self, write: Callable[[], T]) -> T:
        """Run `write` now, in one transaction with everything already queued (which keeps
        the queue's order); for callers that cannot wait. Raises like `commit`."""
        item = PendingWrite(write)
        self._queue.append(item)
        self._flush()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            with self._db.transaction():
                if len(batch) == 1:
                    self._run(batch[0], isolate=False)
                else:
                    for item in batch:
                        self._run(item, isolate=True)
            self.transactions += 1
            self.writes += len(batch)
        except Exception as exc:
            for item in batch:
                if item.error is None:
                    item.error = exc
        finally:
            for item in batch:
                if item.done is not None:
                    item.done.set()

    def _run(self, item: PendingWrite[Any], *, isolate: bool) -> None:
        try:
            if isolate:
                with self._db.savepoint():
                    item.result = item.write()
            else:
                item.result = item.write()
        except Exception as exc:
            item.error = exc
            if not isolate:
                raise
