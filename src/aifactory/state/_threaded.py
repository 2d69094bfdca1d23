"""`ThreadedStore`: the `Store` over a synchronous `Records` backend, run on lanes.

Writes go to the writer's lane (committed in groups, see `_lanes`); reads go to a reader lane
(a connection of their own, so that a write lock held elsewhere does not delay them) or,
when the backend has a single connection, to the writer's lane too.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import anyio

from ..models import (
    ApiKeyInfo,
    AuditEvent,
    Checkpoint,
    Client,
    Deliverable,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    Notification,
    Request,
    Session,
    StageRun,
    StorageRef,
    User,
)
from ._lanes import Lane
from ._records import Records
from .store import Store
from .writes import ExecutionWrite, Pruned

__all__ = ["ThreadedStore"]

T = TypeVar("T")

# The store whose explicit transaction the current task is in: calling that store itself
# (instead of the transaction) from there would wait for the transaction to end, forever.
_IN_TRANSACTION: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "aifactory_store_transaction", default=None
)


class ThreadedStore:
    """A `Store` whose calls run on the lanes of a writer and some reader connections."""

    def __init__(self, writer: Records, readers: list[Records], name: str) -> None:
        self._writer: Lane[Records] = Lane(writer, f"aifactory-{name}-writer")
        self._readers: list[Lane[Records]] = [
            self._writer if reader is writer else Lane(reader, f"aifactory-{name}-reader")
            for reader in readers
        ] or [self._writer]
        self._next_reader = itertools.cycle(self._readers)
        self._closed = False

    @property
    def writer(self) -> Lane[Records]:
        """The writer's lane (its `transactions` and `writes` counters)."""
        return self._writer

    def _outside_transaction(self) -> None:
        if _IN_TRANSACTION.get() is self:
            raise RuntimeError(
                "this task is in a transaction of this store: call the store the "
                "transaction yields, not the store itself"
            )

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        self._outside_transaction()
        return await next(self._next_reader).read(fn, *args)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        self._outside_transaction()
        return await self._writer.write(fn, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Store]:
        """A transaction spanning several calls (see `Store.transaction`)."""
        self._outside_transaction()
        tx = _Transaction(self._writer)
        await self._writer.in_transaction(tx, tx.begin)
        token = _IN_TRANSACTION.set(self)
        try:
            yield tx
        except BaseException as exc:
            _IN_TRANSACTION.reset(token)
            with anyio.CancelScope(shield=True):
                await self._writer.in_transaction(tx, tx.end, type(exc), exc)
            raise
        else:
            _IN_TRANSACTION.reset(token)
            with anyio.CancelScope(shield=True):
                await self._writer.in_transaction(tx, tx.end, None, None)

    async def aclose(self) -> None:
        """Finish pending writes and close every connection."""
        if self._closed:
            return
        self._closed = True
        lanes = list(dict.fromkeys([*self._readers, self._writer]))

        def close() -> None:
            for lane in lanes:
                lane.close()

        await anyio.to_thread.run_sync(close)

    def close(self) -> None:
        """`aclose` for callers without an event loop."""
        if not self._closed:
            self._closed = True
            for lane in dict.fromkeys([*self._readers, self._writer]):
                lane.close()

    async def add_client(self, client: Client) -> None:
        """Store a new client. Raises `ConflictError` if the name is taken."""
        return await self._write(Records.add_client, client)

    async def update_client(self, client: Client) -> None:
        """Replace a stored client."""
        return await self._write(Records.update_client, client)

    async def get_client(self, client_id: str) -> Client:
        """The client `client_id`. Raises `NotFoundError`."""
        return await self._read(Records.get_client, client_id)

    async def list_clients(self) -> list[Client]:
        """Every client, by name."""
        return await self._read(Records.list_clients)

    async def add_user(self, user: User, password_hash: str) -> None:
        """Store a new user. Raises `ConflictError` if the email is taken."""
        return await self._write(Records.add_user, user, password_hash)

    async def get_user(self, user_id: str) -> User:
        """The user `user_id`. Raises `NotFoundError`."""
        return await self._read(Records.get_user, user_id)

    async def find_user(self, email: str) -> tuple[User, str] | None:
        """The user with `email` (case-insensitive) and its password hash, or None."""
        return await self._read(Records.find_user, email)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace a user's password hash (after a re-hash with new cost parameters)."""
        return await self._write(Records.set_password_hash, user_id, password_hash)

    async def list_users(self, client_id: str | None = None) -> list[User]:
        """Users of one client, or all users."""
        return await self._read(Records.list_users, client_id)

    async def count_admins(self) -> int:
        """How many admin users exist."""
        return await self._read(Records.count_admins)

    async def add_session(self, session: Session) -> None:
        """Store a new session."""
        return await self._write(Records.add_session, session)

    async def get_session(self, token_hash: str) -> Session | None:
        """The session stored under `token_hash`, or None."""
        return await self._read(Records.get_session, token_hash)

    async def revoke_session(self, token_hash: str, at: datetime) -> None:
        """Mark a session revoked (idempotent)."""
        return await self._write(Records.revoke_session, token_hash, at)

    async def delete_sessions_expired_before(self, at: datetime) -> int:
        """Forget sessions that expired before `at`; returns how many."""
        return await self._write(Records.delete_sessions_expired_before, at)

    async def add_api_key(self, info: ApiKeyInfo, key_hash: str) -> None:
        """Store an API key's record and hash (never the key)."""
        return await self._write(Records.add_api_key, info, key_hash)

    async def find_api_key(self, prefix: str) -> tuple[ApiKeyInfo, str] | None:
        """The key with this lookup prefix and its stored hash, or None."""
        return await self._read(Records.find_api_key, prefix)

    async def list_api_keys(self, user_id: str | None = None) -> list[ApiKeyInfo]:
        """API keys (of one user, or all), oldest first."""
        return await self._read(Records.list_api_keys, user_id)

    async def revoke_api_key(self, key_id: str, at: datetime) -> ApiKeyInfo:
        """Revoke a key (idempotent). Raises `NotFoundError`."""
        return await self._write(Records.revoke_api_key, key_id, at)

    async def add_request(self, request: Request) -> None:
        """Store a new request."""
        return await self._write(Records.add_request, request)

    async def update_request(self, request: Request, *, expect_status: str | None = None) -> None:
        """Replace a stored request; with `expect_status`, only if it still has that status.

        Raises `ConflictError` if the request changed status meanwhile."""
        return await self._write(lambda db: db.update_request(request, expect_status=expect_status))

    async def get_request(self, request_id: str) -> Request:
        """The request `request_id`. Raises `NotFoundError`."""
        return await self._read(Records.get_request, request_id)

    async def list_requests(self, client_id: str | None = None) -> list[Request]:
        """Requests of one client, or all, newest first."""
        return await self._read(Records.list_requests, client_id)

    async def count_requests_since(self, client_id: str, since: datetime) -> int:
        """How many requests `client_id` made at or after `since`."""
        return await self._read(Records.count_requests_since, client_id, since)

    async def add_deliverable(self, deliverable: Deliverable) -> None:
        """Store a deliverable record."""
        return await self._write(Records.add_deliverable, deliverable)

    async def get_deliverable(self, deliverable_id: str) -> Deliverable:
        """The deliverable `deliverable_id`. Raises `NotFoundError`."""
        return await self._read(Records.get_deliverable, deliverable_id)

    async def list_deliverables(self, request_id: str) -> list[Deliverable]:
        """Deliverables of a request, oldest first."""
        return await self._read(Records.list_deliverables, request_id)

    async def add_notification(self, notification: Notification) -> None:
        """Store a notification."""
        return await self._write(Records.add_notification, notification)

    async def list_notifications(
        self, user_id: str, unread_only: bool = False
    ) -> list[Notification]:
        """A user's notifications, newest first."""
        return await self._read(Records.list_notifications, user_id, unread_only)

    async def mark_notification_read(
        self, notification_id: str, user_id: str, at: datetime
    ) -> bool:
        """Mark one of `user_id`'s notifications read; False if it has no such notification."""
        return await self._write(Records.mark_notification_read, notification_id, user_id, at)

    async def charge(
        self, client_id: str, execution_id: str, total: Decimal, at: datetime
    ) -> Decimal:
        """Bring an execution's charge up to `total`; returns the amount newly charged.

        Settling the same execution again (a repeated report, or a retried execution that
        cost more) charges only the difference. A new calendar month (UTC) resets the
        client's usage before charging."""
        return await self._write(Records.charge, client_id, execution_id, total, at)

    async def reserved_usd(self, client_id: str) -> Decimal:
        """What the client's executions in flight hold of its budget."""
        return await self._read(Records.reserved_usd, client_id)

    async def reserve(
        self,
        client_id: str,
        execution_id: str,
        stage_id: str,
        amount: Decimal,
        at: datetime,
        *,
        check: bool = True,
    ) -> None:
        """Hold `amount` of the client's budget for a stage (replacing its earlier hold).

        With `check`, raises `QuotaExceededError` if the budget left after usage and other
        holds is smaller (without, the hold records a cost already incurred)."""
        return await self._write(
            lambda db: db.reserve(client_id, execution_id, stage_id, amount, at, check=check)
        )

    async def release(self, execution_id: str, stage_id: str | None = None) -> None:
        """Drop a stage's hold, or every hold of the execution."""
        return await self._write(Records.release, execution_id, stage_id)

    async def append_audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        details: dict[str, Any],
    ) -> AuditEvent:
        """Append to the audit log (which the database refuses to update or delete)."""
        return await self._write(Records.append_audit, at, actor, action, target, outcome, details)

    async def list_audit(self, *, action: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """Audit events, newest first, optionally of one action."""
        return await self._read(lambda db: db.list_audit(action=action, limit=limit))

    async def add_execution(self, execution: Execution, stages: Sequence[StageRun]) -> None:
        """Store a new execution with its stage runs (all pending), atomically."""
        return await self._write(Records.add_execution, execution, stages)

    async def get_execution(self, execution_id: str) -> Execution:
        """The execution `execution_id`. Raises `NotFoundError`."""
        return await self._read(Records.get_execution, execution_id)

    async def execution_status(self, execution_id: str) -> tuple[ExecutionStatus, datetime] | None:
        """An execution's status and last update, or None: a cheap check for staleness."""
        return await self._read(Records.execution_status, execution_id)

    async def list_executions(self, status: ExecutionStatus | None = None) -> list[Execution]:
        """Executions, optionally only those with `status`, oldest first."""
        return await self._read(Records.list_executions, status)

    async def get_stage_runs(self, execution_id: str) -> list[StageRun]:
        """The stage runs of an execution (in no particular order)."""
        return await self._read(Records.get_stage_runs, execution_id)

    async def record(self, write: ExecutionWrite) -> None:
        """Commit an `ExecutionWrite` in one transaction (see its docstring for the parts).

        Raises `StaleAttemptError` (an attempt fence failed) and `LeaseLostError` (the
        execution's lease is not `write.lease`); then nothing is written."""
        return await self._write(Records.record, write)

    async def reopen(self, execution: Execution, runs: Sequence[StageRun]) -> None:
        """Store a reopened execution and its reset stage runs at once (unfenced)."""
        return await self._write(Records.reopen, execution, runs)

    async def latest_checkpoint(self, execution_id: str) -> Checkpoint | None:
        """The newest checkpoint of an execution, with every output committed up to it.

        Each stored version holds the outputs it added; they are folded here, in version
        order, so a later version's entry for a stage wins."""
        return await self._read(Records.latest_checkpoint, execution_id)

    async def last_event_seq(self, execution_id: str) -> int:
        """The highest event sequence number of an execution (0 if none)."""
        return await self._read(Records.last_event_seq, execution_id)

    async def list_events(
        self, execution_id: str, after: int = 0, limit: int = 1000
    ) -> list[ExecutionEvent]:
        """Events of an execution with `seq > after`, in order."""
        return await self._read(Records.list_events, execution_id, after, limit)

    async def count_active_executions(self, client_id: str) -> int:
        """Executions of the client that are pending or running."""
        return await self._read(Records.count_active_executions, client_id)

    async def cache_get(self, key: str, now: datetime) -> tuple[StorageRef, dict[str, Any]] | None:
        """A cached stage result that has not expired, or None."""
        return await self._read(Records.cache_get, key, now)

    async def prune(self, finished_before: datetime, now: datetime) -> Pruned:
        """Forget what long-finished executions no longer need, in one transaction.

        Of executions that finished before `finished_before`: their checkpoints and events;
        and, of those that *completed*, their stages' inputs and outputs (the stage runs keep
        their status, times, usage and cost; the references go, and the payload rows behind
        them unless a live result-cache entry still points there). Failed and cancelled
        executions keep their stage data, since a retry reuses it, and so does a completed one
        whose request is still executing (not settled yet). Also expired cache entries.
        Running, pending and recently finished executions keep everything.

        Inputs and outputs held outside the database (KV files, R2 objects) are returned in
        `Pruned.blobs` for the caller to delete once this has committed."""
        return await self._write(Records.prune, finished_before, now)


class _Transaction(ThreadedStore):
    """The `Store` an explicit transaction yields: every call runs inside it."""

    def __init__(self, writer: Lane[Records]) -> None:
        self._writer = writer
        self._readers = [writer]
        self._closed = False
        self._scope: AbstractContextManager[None] | None = None

    def begin(self, db: Records) -> None:
        self._scope = db.transaction()
        self._scope.__enter__()

    def end(
        self, db: Records, exc_type: type[BaseException] | None, exc: BaseException | None
    ) -> None:
        assert self._scope is not None
        scope, self._scope = self._scope, None
        scope.__exit__(exc_type, exc, None if exc is None else exc.__traceback__)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._writer.in_transaction(self, fn, *args)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._writer.in_transaction(self, fn, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Store]:
        """Joins this transaction."""
        yield self

    async def aclose(self) -> None:
        """Nothing to close: the store owns the connections."""
