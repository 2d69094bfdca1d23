"""`ThreadedStore`: the `Store` over a synchronous `Records` backend, run on lanes.

Writes go to the writer's lane (committed in groups, see `_lanes`); reads go to a reader lane
(a connection of their own, so that a write lock held elsewhere does not delay them) or,
when the backend has a single connection, to the writer's lane too.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
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
    LoginFailures,
    LoginThrottle,
    ModelUsage,
    Notification,
    Request,
    Session,
    StageRun,
    StorageRef,
    Template,
    TemplateVersion,
    Tier,
    User,
    WebhookDelivery,
)
from ._lanes import Lane
from ._migrations import latest_version
from ._records import Records
from .store import Store
from .writes import ExecutionWrite, Lease, MetricsFacts, Pruned, UsageFacts

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
    def statements(self) -> int:
        """Statements run so far on all its connections."""
        lanes = dict.fromkeys([self._writer, *self._readers])
        return sum(lane.database.statements for lane in lanes)

    @property
    def round_trips(self) -> int:
        """Waits for the database server so far, on all its connections (PostgreSQL; 0 on
        SQLite, which runs in process)."""
        lanes = dict.fromkeys([self._writer, *self._readers])
        return sum(lane.database.round_trips for lane in lanes)

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
        """`Store.add_client`."""
        return await self._write(Records.add_client, client)

    async def update_client(self, client: Client) -> None:
        """`Store.update_client`."""
        return await self._write(Records.update_client, client)

    async def change_client(
        self,
        client_id: str,
        *,
        name: str | None = None,
        tier: Tier | None = None,
        monthly_budget_usd: Decimal | None = None,
        active: bool | None = None,
    ) -> tuple[Client, Client]:
        """`Store.change_client`."""
        return await self._write(
            Records.change_client, client_id, name, tier, monthly_budget_usd, active
        )

    async def get_client(self, client_id: str) -> Client:
        """`Store.get_client`."""
        return await self._read(Records.get_client, client_id)

    async def list_clients(self) -> list[Client]:
        """`Store.list_clients`."""
        return await self._read(Records.list_clients)

    async def add_user(self, user: User, password_hash: str) -> None:
        """`Store.add_user`."""
        return await self._write(Records.add_user, user, password_hash)

    async def get_user(self, user_id: str) -> User:
        """`Store.get_user`."""
        return await self._read(Records.get_user, user_id)

    async def find_user(self, email: str) -> tuple[User, str] | None:
        """`Store.find_user`."""
        return await self._read(Records.find_user, email)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """`Store.set_password_hash`."""
        return await self._write(Records.set_password_hash, user_id, password_hash)

    async def change_user(
        self,
        user_id: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        active: bool | None = None,
    ) -> tuple[User, User]:
        """`Store.change_user`."""
        return await self._write(Records.change_user, user_id, email, display_name, active)

    async def list_users(self, client_id: str | None = None) -> list[User]:
        """`Store.list_users`."""
        return await self._read(Records.list_users, client_id)

    async def count_admins(self) -> int:
        """`Store.count_admins`."""
        return await self._read(Records.count_admins)

    async def add_session(self, session: Session) -> None:
        """`Store.add_session`."""
        return await self._write(Records.add_session, session)

    async def get_session(self, token_hash: str) -> Session | None:
        """`Store.get_session`."""
        return await self._read(Records.get_session, token_hash)

    async def revoke_session(self, token_hash: str, at: datetime) -> None:
        """`Store.revoke_session`."""
        return await self._write(Records.revoke_session, token_hash, at)

    async def revoke_user_sessions(
        self, user_id: str, at: datetime, except_token_hash: str | None = None
    ) -> int:
        """`Store.revoke_user_sessions`."""
        return await self._write(Records.revoke_user_sessions, user_id, at, except_token_hash)

    async def delete_sessions_expired_before(self, at: datetime) -> int:
        """`Store.delete_sessions_expired_before`."""
        return await self._write(Records.delete_sessions_expired_before, at)

    async def add_api_key(self, info: ApiKeyInfo, key_hash: str) -> None:
        """`Store.add_api_key`."""
        return await self._write(Records.add_api_key, info, key_hash)

    async def find_api_key(self, prefix: str) -> tuple[ApiKeyInfo, str] | None:
        """`Store.find_api_key`."""
        return await self._read(Records.find_api_key, prefix)

    async def list_api_keys(self, user_id: str | None = None) -> list[ApiKeyInfo]:
        """`Store.list_api_keys`."""
        return await self._read(Records.list_api_keys, user_id)

    async def get_api_key(self, key_id: str) -> ApiKeyInfo:
        """`Store.get_api_key`."""
        return await self._read(Records.get_api_key, key_id)

    async def revoke_api_key(self, key_id: str, at: datetime) -> ApiKeyInfo:
        """`Store.revoke_api_key`."""
        return await self._write(Records.revoke_api_key, key_id, at)

    async def add_request(self, request: Request) -> None:
        """`Store.add_request`."""
        return await self._write(Records.add_request, request)

    async def update_request(self, request: Request, *, expect_status: str | None = None) -> None:
        """`Store.update_request`."""
        return await self._write(lambda db: db.update_request(request, expect_status=expect_status))

    async def get_request(self, request_id: str) -> Request:
        """`Store.get_request`."""
        return await self._read(Records.get_request, request_id)

    async def list_requests(self, client_id: str | None = None) -> list[Request]:
        """`Store.list_requests`."""
        return await self._read(Records.list_requests, client_id)

    async def count_requests_since(self, client_id: str, since: datetime) -> int:
        """`Store.count_requests_since`."""
        return await self._read(Records.count_requests_since, client_id, since)

    async def add_deliverable(self, deliverable: Deliverable) -> None:
        """`Store.add_deliverable`."""
        return await self._write(Records.add_deliverable, deliverable)

    async def get_deliverable(self, deliverable_id: str) -> Deliverable:
        """`Store.get_deliverable`."""
        return await self._read(Records.get_deliverable, deliverable_id)

    async def list_deliverables(self, request_id: str) -> list[Deliverable]:
        """`Store.list_deliverables`."""
        return await self._read(Records.list_deliverables, request_id)

    async def add_notification(self, notification: Notification) -> None:
        """`Store.add_notification`."""
        return await self._write(Records.add_notification, notification)

    async def list_notifications(
        self, user_id: str, unread_only: bool = False
    ) -> list[Notification]:
        """`Store.list_notifications`."""
        return await self._read(Records.list_notifications, user_id, unread_only)

    async def mark_notification_read(
        self, notification_id: str, user_id: str, at: datetime
    ) -> bool:
        """`Store.mark_notification_read`."""
        return await self._write(Records.mark_notification_read, notification_id, user_id, at)

    async def charge(
        self, client_id: str, execution_id: str, total: Decimal, at: datetime
    ) -> Decimal:
        """`Store.charge`."""
        return await self._write(Records.charge, client_id, execution_id, total, at)

    async def reserved_usd(self, client_id: str) -> Decimal:
        """`Store.reserved_usd`."""
        return await self._read(Records.reserved_usd, client_id)

    async def admit(
        self,
        client_id: str,
        execution_id: str,
        estimate: Decimal,
        at: datetime,
        concurrent: int | None = None,
    ) -> Decimal:
        """`Store.admit`."""
        return await self._write(Records.admit, client_id, execution_id, estimate, at, concurrent)

    async def reserve(
        self,
        client_id: str,
        execution_id: str,
        stage_id: str,
        amount: Decimal,
        at: datetime,
        *,
        check: bool = True,
    ) -> Decimal | None:
        """`Store.reserve`."""
        return await self._write(
            lambda db: db.reserve(client_id, execution_id, stage_id, amount, at, check=check)
        )

    async def release(self, execution_id: str, stage_id: str | None = None) -> None:
        """`Store.release`."""
        return await self._write(Records.release, execution_id, stage_id)

    async def take_rate_token(self, key: str, per_minute: int, now: float) -> float | None:
        """`Store.take_rate_token`."""
        return await self._write(Records.take_rate_token, key, per_minute, now)

    async def login_failures(self, key: str) -> LoginFailures:
        """`Store.login_failures`."""
        return await self._read(Records.login_failures, key)

    async def note_login_failure(
        self, key: str, free: int, throttle: LoginThrottle, now: float
    ) -> LoginFailures:
        """`Store.note_login_failure`."""
        return await self._write(Records.note_login_failure, key, free, throttle, now)

    async def forget_login_failures(self, key: str) -> None:
        """`Store.forget_login_failures`."""
        return await self._write(Records.forget_login_failures, key)

    async def salt(self, name: str, candidate: str) -> str:
        """`Store.salt`."""
        return await self._write(Records.salt, name, candidate)

    async def append_audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        details: dict[str, Any],
    ) -> AuditEvent:
        """`Store.append_audit`."""
        return await self._write(Records.append_audit, at, actor, action, target, outcome, details)

    async def list_audit(self, *, action: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """`Store.list_audit`."""
        return await self._read(lambda db: db.list_audit(action=action, limit=limit))

    async def templates_generation(self) -> int:
        """`Store.templates_generation`."""
        return await self._read(Records.templates_generation)

    async def add_template_version(
        self, template: Template, at: datetime, by: str, expected: int | None = None
    ) -> TemplateVersion:
        """`Store.add_template_version`."""
        return await self._write(Records.add_template_version, template, at, by, expected)

    async def retire_template(self, name: str, at: datetime) -> TemplateVersion:
        """`Store.retire_template`."""
        return await self._write(Records.retire_template, name, at)

    async def template_version(self, name: str, version: int | None = None) -> TemplateVersion:
        """`Store.template_version`."""
        return await self._read(Records.template_version, name, version)

    async def template_versions(self, name: str) -> list[TemplateVersion]:
        """`Store.template_versions`."""
        return await self._read(Records.template_versions, name)

    async def latest_templates(self) -> list[TemplateVersion]:
        """`Store.latest_templates`."""
        return await self._read(Records.latest_templates)

    async def seed_templates(self, shipped: Sequence[Template], at: datetime) -> list[str]:
        """`Store.seed_templates`."""
        return await self._write(Records.seed_templates, shipped, at)

    async def add_model_usage(self, calls: Sequence[ModelUsage]) -> None:
        """`Store.add_model_usage`."""
        return await self._write(Records.add_model_usage, calls)

    async def usage_facts(self, client_id: str, start: datetime, end: datetime) -> UsageFacts:
        """`Store.usage_facts`."""
        return await self._read(Records.usage_facts, client_id, start, end)

    async def metrics_facts(self, start: datetime, end: datetime) -> MetricsFacts:
        """`Store.metrics_facts`."""
        return await self._read(Records.metrics_facts, start, end)

    async def add_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        """`Store.add_webhook_delivery`."""
        return await self._write(Records.add_webhook_delivery, delivery)

    async def list_webhook_deliveries(
        self, event_id: str | None = None, limit: int = 100
    ) -> list[WebhookDelivery]:
        """`Store.list_webhook_deliveries`."""
        return await self._read(Records.list_webhook_deliveries, event_id, limit)

    async def claim_budget_threshold(
        self, client_id: str, month: str, percent: int, at: datetime
    ) -> bool:
        """`Store.claim_budget_threshold`."""
        return await self._write(Records.claim_budget_threshold, client_id, month, percent, at)

    async def add_execution(
        self, execution: Execution, stages: Sequence[StageRun], runnable: bool = False
    ) -> None:
        """`Store.add_execution`."""
        return await self._write(Records.add_execution, execution, stages, runnable)

    async def get_execution(self, execution_id: str) -> Execution:
        """`Store.get_execution`."""
        return await self._read(Records.get_execution, execution_id)

    async def execution_status(self, execution_id: str) -> tuple[ExecutionStatus, datetime] | None:
        """`Store.execution_status`."""
        return await self._read(Records.execution_status, execution_id)

    async def list_executions(self, status: ExecutionStatus | None = None) -> list[Execution]:
        """`Store.list_executions`."""
        return await self._read(Records.list_executions, status)

    async def get_stage_runs(self, execution_id: str) -> list[StageRun]:
        """`Store.get_stage_runs`."""
        return await self._read(Records.get_stage_runs, execution_id)

    async def record(self, write: ExecutionWrite) -> None:
        """`Store.record`."""
        return await self._write(Records.record, write)

    async def reopen(self, execution: Execution, runs: Sequence[StageRun]) -> None:
        """`Store.reopen`."""
        return await self._write(Records.reopen, execution, runs)

    async def latest_checkpoint(self, execution_id: str) -> Checkpoint | None:
        """`Store.latest_checkpoint`."""
        return await self._read(Records.latest_checkpoint, execution_id)

    async def last_event_seq(self, execution_id: str) -> int:
        """`Store.last_event_seq`."""
        return await self._read(Records.last_event_seq, execution_id)

    async def list_events(
        self, execution_id: str, after: int = 0, limit: int = 1000
    ) -> list[ExecutionEvent]:
        """`Store.list_events`."""
        return await self._read(Records.list_events, execution_id, after, limit)

    async def count_active_executions(self, client_id: str) -> int:
        """`Store.count_active_executions`."""
        return await self._read(Records.count_active_executions, client_id)

    async def cache_get(self, key: str, now: datetime) -> tuple[StorageRef, dict[str, Any]] | None:
        """`Store.cache_get`."""
        return await self._read(Records.cache_get, key, now)

    async def prune(self, finished_before: datetime, now: datetime) -> Pruned:
        """`Store.prune`."""
        return await self._write(Records.prune, finished_before, now)

    async def schema_version(self) -> int:
        """`Store.schema_version`."""
        return await self._read(Records.schema_version)

    def schema_latest(self) -> int:
        """`Store.schema_latest`."""
        return latest_version(self._writer.database.migrations)

    async def lease_of(self, execution_id: str) -> Lease:
        """`Store.lease_of`."""
        return await self._read(Records.lease_of, execution_id)

    async def list_leases(self) -> list[Lease]:
        """`Store.list_leases`."""
        return await self._read(Records.list_leases)

    async def claim_ready(
        self,
        owner: str,
        now: datetime,
        expires_at: datetime,
        limit: int,
        dead: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> list[tuple[str, int]]:
        """`Store.claim_ready`."""
        return await self._write(Records.claim_ready, owner, now, expires_at, limit, dead, exclude)

    async def renew_leases(
        self, owner: str, leases: Mapping[str, int], expires_at: datetime
    ) -> list[str]:
        """`Store.renew_leases`."""
        return await self._write(Records.renew_leases, owner, leases, expires_at)

    async def release_leases(
        self, owner: str, leases: Mapping[str, int], *, finished: bool = False
    ) -> None:
        """`Store.release_leases`."""
        return await self._write(lambda db: db.release_leases(owner, leases, finished=finished))


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
