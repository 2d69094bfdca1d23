"""`Lane`: a thread that owns one database connection and runs its work, off the event loop.

Every call on the state database blocks (sqlite3 and psycopg's synchronous API, which, unlike
its asyncio one, also works under trio), so the async store hands each call to the lane of a
connection and awaits the answer. A lane is a plain thread reading a queue: the connection
is only ever used by that thread, and waking the awaiting task costs one
`call_soon_threadsafe` (asyncio) or `run_sync_soon` (trio), about half of what
`anyio.to_thread.run_sync` costs per call.

The writer's lane commits in groups: when it picks up an autocommit write, it also takes
every other write already queued and runs them all in one transaction, each in a savepoint
so that one failing write is undone alone and its caller alone gets the error. Nothing waits
to fill a group: while one transaction commits, the next one's writes queue up.

An explicit transaction (`Store.transaction()`) holds the lane between awaits: work that is
not part of it is set aside until it commits or rolls back.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from .._exceptions import StorageError
from ._sql import Database

__all__ = ["Lane"]

T = TypeVar("T")
DB = TypeVar("DB", bound=Database)

# Job kinds.
_READ, _WRITE, _TX = 0, 1, 2


class _Job:
    __slots__ = ("args", "done", "error", "fn", "kind", "result", "tx")

    def __init__(
        self, kind: int, fn: Callable[..., Any], args: tuple[Any, ...], tx: object | None
    ) -> None:
        self.kind = kind
        self.fn = fn
        self.args = args
        self.tx = tx
        self.result: Any = None
        self.error: BaseException | None = None
        self.done: Callable[[], None] | None = None


class Lane(Generic[DB]):
    """One connection and the thread that runs everything done on it."""

    def __init__(self, database: DB, name: str) -> None:
        self.database = database
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        #: Transactions committed and the writes in them, for tests and benchmarks.
        self.transactions = 0
        self.writes = 0
        self._closed = False

    # -- the async side --------------------------------------------------------------------

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(database, *args)` outside any transaction; its result."""
        result: T = await self._call(_Job(_READ, fn, args, None), shield=False)
        return result

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(database, *args)` in the next group transaction; its result once committed.

        Raises what `fn` raised (its statements undone) or what the commit raised. Once
        queued, the write commits even if the caller is cancelled meanwhile; the cancellation
        is delivered after the commit.
        """
        result: T = await self._call(_Job(_WRITE, fn, args, None), shield=True)
        return result

    async def in_transaction(self, tx: object, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(database, *args)` as part of the explicit transaction `tx`."""
        result: T = await self._call(_Job(_TX, fn, args, tx), shield=True)
        return result

    async def _call(self, job: _Job, *, shield: bool) -> Any:
        if self._closed:
            # Queued to a stopped thread, the job would wait forever.
            raise StorageError("the state database is closed")
        event = anyio.Event()
        native: Any = anyio.lowlevel.current_token().native_token
        # asyncio's loop or trio's token: either schedules a callback from another thread.
        wake = getattr(native, "call_soon_threadsafe", None) or native.run_sync_soon
        job.done = lambda: wake(event.set)
        self._queue.put(job)
        if shield:
            with anyio.CancelScope(shield=True):
                await event.wait()
        else:
            await event.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        """Finish the queued work, stop the thread and close the connection; later calls
        raise `StorageError`."""
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self.database.close()

    # -- the thread ------------------------------------------------------------------------

    def _serve(self) -> None:
        aside: collections.deque[_Job] = collections.deque()
        current: object | None = None  # the explicit transaction holding the lane
        while True:
            job: _Job | None = aside.popleft() if aside and current is None else self._queue.get()
            if job is None:
                if current is None and not aside:
                    return
                self._queue.put(None)  # stop once the transaction and what waits are done
                continue
            if current is not None and job.tx is not current:
                aside.append(job)
                continue
            if job.kind == _WRITE:
                self._group(job, aside)
            else:
                self._run(job)
                if job.kind == _TX:
                    current = job.tx if self.database.in_transaction else None

    def _run(self, job: _Job) -> None:
        try:
            job.result = job.fn(self.database, *job.args)
        except BaseException as exc:
            job.error = exc
        assert job.done is not None
        job.done()

    def _group(self, first: _Job, aside: collections.deque[_Job]) -> None:
        """Commit `first` and every write queued behind it in one transaction."""
        batch = [first]
        others: list[_Job] = []
        while aside:
            job = aside.popleft()
            (batch if job.kind == _WRITE else others).append(job)
        stop = False
        while not stop:
            try:
                queued = self._queue.get_nowait()
            except queue.Empty:
                break
            if queued is None:
                stop = True  # after this group and what came in meanwhile
            else:
                (batch if queued.kind == _WRITE else others).append(queued)
        db = self.database
        try:
            with db.transaction():
                if len(batch) == 1:
                    first.result = first.fn(db, *first.args)
                else:
                    for job in batch:
                        try:
                            with db.savepoint():
                                job.result = job.fn(db, *job.args)
                        except Exception as exc:
                            job.error = exc
            self.transactions += 1
            self.writes += len(batch)
        except BaseException as exc:
            for job in batch:
                if job.error is None:
                    job.error = exc
        for job in batch:
            assert job.done is not None
            job.done()
        # Reads, transactions and the stop signal that came in meanwhile, in their order.
        for job in others:
            self._queue.put(job)
        if stop:
            self._queue.put(None)
