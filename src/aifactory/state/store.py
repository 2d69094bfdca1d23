"""`Store`: the one port through which the factory keeps its state.

The orchestrator, the account side (KAM) and the server know the state only through this
protocol: narrow, typed and async. `SQLiteStore` (the embedded default) and `PostgresStore`
(deployments, shared by replicas) implement it and pass one conformance suite
(`tests/state/`).

Each method is its own transaction. `transaction()` groups several into one: the object it
yields is a `Store` whose calls all belong to that transaction, which commits when the block
ends and rolls back if it raises; a `transaction()` taken on it joins it.

Errors: `NotFoundError`, `ConflictError` (a uniqueness or state conflict),
`StaleAttemptError`/`LeaseLostError` (a fenced write lost its fence), `QuotaExceededError`
(budget holds), `StoreBusyError` (another process holds the database's write lock for too
long; retry later), and `StorageError` for anything else the database refuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

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
from .writes import ExecutionWrite, Lease, MetricsFacts, Pruned, UsageFacts

__all__ = ["Store"]


class Store(Protocol):
    """The factory's state: accounts, requests, executions and what they record."""

    def transaction(self) -> AbstractAsyncContextManager[Store]:
        """A transaction spanning several calls (joins an enclosing one)."""
        ...

    async def aclose(self) -> None:
        """Finish pending writes and close the database."""
        ...

    async def schema_version(self) -> int:
        """The version of the database's schema (migrated when the store opened)."""
        ...

    def schema_latest(self) -> int:
        """The newest schema version this aifactory knows for the database: the store's
        schema is current when `schema_version` says as much."""
        ...

    async def add_client(self, client: Client) -> None:
        """Store a new client. Raises `ConflictError` if the name is taken."""
        ...

    async def update_client(self, client: Client) -> None:
        """Replace a stored client."""
        ...

    async def get_client(self, client_id: str) -> Client:
        """The client `client_id`. Raises `NotFoundError`."""
        ...

    async def change_client(
        self,
        client_id: str,
        *,
        name: str | None = None,
        tier: Tier | None = None,
        monthly_budget_usd: Decimal | None = None,
        active: bool | None = None,
    ) -> tuple[Client, Client]:
        """Change the given fields of a client (`None`: unchanged) under its row lock,
        writing only those columns (a charge committed meanwhile stands). Returns the client
        before and after. Raises `NotFoundError`, `ConflictError` (the name is taken)."""
        ...

    async def list_clients(self) -> list[Client]:
        """Every client, by name."""
        ...

    async def add_user(self, user: User, password_hash: str) -> None:
        """Store a new user. Raises `ConflictError` if the email is taken."""
        ...

    async def get_user(self, user_id: str) -> User:
        """The user `user_id`. Raises `NotFoundError`."""
        ...

    async def find_user(self, email: str) -> tuple[User, str] | None:
        """The user with `email` (case-insensitive) and its password hash, or None."""
        ...

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace a user's password hash (after a re-hash with new cost parameters)."""
        ...

    async def list_users(self, client_id: str | None = None) -> list[User]:
        """Users of one client, or all users."""
        ...

    async def change_user(
        self,
        user_id: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        active: bool | None = None,
    ) -> tuple[User, User]:
        """Change the given fields of a user (`None`: unchanged); returns it before and
        after. Raises `NotFoundError`, `ConflictError` (the email is taken, or it would
        deactivate the last active admin)."""
        ...

    async def count_admins(self) -> int:
        """How many admin users exist."""
        ...

    async def add_session(self, session: Session) -> None:
        """Store a new session."""
        ...

    async def get_session(self, token_hash: str) -> Session | None:
        """The session stored under `token_hash`, or None."""
        ...

    async def revoke_session(self, token_hash: str, at: datetime) -> None:
        """Mark a session revoked (idempotent)."""
        ...

    async def revoke_user_sessions(
        self, user_id: str, at: datetime, except_token_hash: str | None = None
    ) -> int:
        """Revoke every live session of a user but the one under `except_token_hash`;
        returns how many were revoked."""
        ...

    async def delete_sessions_expired_before(self, at: datetime) -> int:
        """Forget sessions that expired before `at`; returns how many."""
        ...

    async def add_api_key(self, info: ApiKeyInfo, key_hash: str) -> None:
        """Store an API key's record and hash (never the key)."""
        ...

    async def find_api_key(self, prefix: str) -> tuple[ApiKeyInfo, str] | None:
        """The key with this lookup prefix and its stored hash, or None."""
        ...

    async def list_api_keys(self, user_id: str | None = None) -> list[ApiKeyInfo]:
        """API keys (of one user, or all), oldest first."""
        ...

    async def get_api_key(self, key_id: str) -> ApiKeyInfo:
        """The record of API key `key_id` (never the key). Raises `NotFoundError`."""
        ...

    async def revoke_api_key(self, key_id: str, at: datetime) -> ApiKeyInfo:
        """Revoke a key (idempotent). Raises `NotFoundError`."""
        ...

    async def add_request(self, request: Request) -> None:
        """Store a new request."""
        ...

    async def update_request(self, request: Request, *, expect_status: str | None = None) -> None:
        """Replace a stored request; with `expect_status`, only if it still has that status.

        Raises `ConflictError` if the request changed status meanwhile."""
        ...

    async def get_request(self, request_id: str) -> Request:
        """The request `request_id`. Raises `NotFoundError`."""
        ...

    async def list_requests(self, client_id: str | None = None) -> list[Request]:
        """Requests of one client, or all, newest first."""
        ...

    async def count_requests_since(self, client_id: str, since: datetime) -> int:
        """How many requests `client_id` made at or after `since`."""
        ...

    async def add_deliverable(self, deliverable: Deliverable) -> None:
        """Store a deliverable record."""
        ...

    async def get_deliverable(self, deliverable_id: str) -> Deliverable:
        """The deliverable `deliverable_id`. Raises `NotFoundError`."""
        ...

    async def list_deliverables(self, request_id: str) -> list[Deliverable]:
        """Deliverables of a request, oldest first."""
        ...

    async def add_notification(self, notification: Notification) -> None:
        """Store a notification."""
        ...

    async def list_notifications(
        self, user_id: str, unread_only: bool = False
    ) -> list[Notification]:
        """A user's notifications, newest first."""
        ...

    async def mark_notification_read(
        self, notification_id: str, user_id: str, at: datetime
    ) -> bool:
        """Mark one of `user_id`'s notifications read; False if it has no such notification."""
        ...

    async def charge(
        self, client_id: str, execution_id: str, total: Decimal, at: datetime
    ) -> Decimal:
        """Bring an execution's charge up to `total`; returns the amount newly charged.

        Settling the same execution again (a repeated report, or a retried execution that
        cost more) charges only the difference. A new calendar month (UTC) resets the
        client's usage before charging."""
        ...

    async def reserved_usd(self, client_id: str) -> Decimal:
        """What the client's executions in flight hold of its budget."""
        ...

    async def admit(
        self,
        client_id: str,
        execution_id: str,
        estimate: Decimal,
        at: datetime,
        concurrent: int | None = None,
    ) -> Decimal:
        """Admit an execution: hold its `estimate` (less what it was charged already) if the
        client's budget left after usage and every other hold covers it and fewer than
        `concurrent` other executions of the client are active; check and hold in one
        transaction. Returns the amount held. Raises `QuotaExceededError` (`details["reason"]`:
        "budget" or "concurrency")."""
        ...

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
        """Hold `amount` of the client's budget for a stage (replacing its earlier hold).

        With `check`, returns what the stage may spend at most — the larger of the
        execution's admission hold and what the budget leaves after usage and other
        executions' holds, less its other stages' holds — and raises `QuotaExceededError`
        if that is less than `amount`. Without, the hold records a cost already incurred
        (and `None` is returned)."""
        ...

    async def release(self, execution_id: str, stage_id: str | None = None) -> None:
        """Drop a stage's hold, or every hold of the execution."""
        ...

    async def take_rate_token(self, key: str, per_minute: int, now: float) -> float | None:
        """Take one request's token from `key`'s rate-limit bucket: `None` if the request
        may go, else the seconds until it may (atomic across processes)."""
        ...

    async def login_failures(self, key: str) -> LoginFailures:
        """`key`'s failed logins (an account's or a client address's; none: zero)."""
        ...

    async def note_login_failure(
        self, key: str, free: int, throttle: LoginThrottle, now: float
    ) -> LoginFailures:
        """Count one failed login for `key`, which `free` failures cost nothing, under
        `throttle` at `now` (seconds); its failures after (atomic across processes)."""
        ...

    async def forget_login_failures(self, key: str) -> None:
        """Forget `key`'s failed logins."""
        ...

    async def salt(self, name: str, candidate: str) -> str:
        """The database's random salt called `name`, which `candidate` becomes if it has none
        yet (every process sharing the database gets the same one)."""
        ...

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
        ...

    async def list_audit(self, *, action: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """Audit events, newest first, optionally of one action."""
        ...

    async def templates_generation(self) -> int:
        """How many changes the templates have seen, in any process sharing the store."""
        ...

    async def add_template_version(
        self, template: Template, at: datetime, by: str, expected: int | None = None
    ) -> TemplateVersion:
        """Save `template` as the next version of its name (1 for a new one). Raises
        `ConflictError` for a retired template, or when `expected` (the version the author
        started from, 0 for a new template) is not the latest."""
        ...

    async def retire_template(self, name: str, at: datetime) -> TemplateVersion:
        """Retire a template (every version); its latest version. Raises `NotFoundError`,
        `ConflictError` (retired already)."""
        ...

    async def template_version(self, name: str, version: int | None = None) -> TemplateVersion:
        """A version of a template (default: the latest). Raises `NotFoundError`."""
        ...

    async def template_versions(self, name: str) -> list[TemplateVersion]:
        """Every version of a template, oldest first."""
        ...

    async def latest_templates(self) -> list[TemplateVersion]:
        """The latest version of every template, retired ones included, by name."""
        ...

    async def seed_templates(self, shipped: Sequence[Template], at: datetime) -> list[str]:
        """Bring the shipped catalogue in (new templates as version 1; the shipped ones
        staff have not changed upgraded); the names saved."""
        ...

    async def add_model_usage(self, calls: Sequence[ModelUsage]) -> None:
        """Record model calls made for requests outside any execution (the ledger the usage
        report reads; stage attempts' calls are in their stage runs)."""
        ...

    async def usage_facts(self, client_id: str, start: datetime, end: datetime) -> UsageFacts:
        """What client `client_id` used from `start` to `end` (one month): the executions
        created then and their stage runs, its model calls outside executions, and what its
        budget was charged in `start`'s month (`YYYY-MM`), read as one snapshot."""
        ...

    async def metrics_facts(self, start: datetime, end: datetime) -> MetricsFacts:
        """The executions created from `start` to `end` (with their request's creation
        time) and their stage runs, what the factory-wide metrics are made of; one
        snapshot."""
        ...

    async def add_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        """Record one attempt to deliver a webhook event."""
        ...

    async def list_webhook_deliveries(
        self, event_id: str | None = None, limit: int = 100
    ) -> list[WebhookDelivery]:
        """Webhook delivery attempts (of one event, or all), newest first, at most `limit`."""
        ...

    async def claim_budget_threshold(
        self, client_id: str, month: str, percent: int, at: datetime
    ) -> bool:
        """Note that `client_id` reached `percent` % of its budget in `month` (`YYYY-MM`):
        true the first time, false ever after (in any process), so it is announced once."""
        ...

    async def add_execution(
        self, execution: Execution, stages: Sequence[StageRun], runnable: bool = False
    ) -> None:
        """Store a new execution with its stage runs (all pending), atomically; `runnable`:
        any replica may take it up (else it waits to be launched)."""
        ...

    async def get_execution(self, execution_id: str) -> Execution:
        """The execution `execution_id`. Raises `NotFoundError`."""
        ...

    async def execution_status(self, execution_id: str) -> tuple[ExecutionStatus, datetime] | None:
        """An execution's status and last update, or None: a cheap check for staleness."""
        ...

    async def list_executions(self, status: ExecutionStatus | None = None) -> list[Execution]:
        """Executions, optionally only those with `status`, oldest first."""
        ...

    async def get_stage_runs(self, execution_id: str) -> list[StageRun]:
        """The stage runs of an execution (in no particular order)."""
        ...

    async def record(self, write: ExecutionWrite) -> None:
        """Commit an `ExecutionWrite` in one transaction (see its docstring for the parts).

        Raises `StaleAttemptError` (an attempt fence failed) and `LeaseLostError` (the
        execution's lease is not `write.lease`); then nothing is written."""
        ...

    async def reopen(self, execution: Execution, runs: Sequence[StageRun]) -> None:
        """Store a reopened execution and its reset stage runs at once (unfenced)."""
        ...

    async def latest_checkpoint(self, execution_id: str) -> Checkpoint | None:
        """The newest checkpoint of an execution, with every output committed up to it.

        Each stored version holds the outputs it added; they are folded here, in version
        order, so a later version's entry for a stage wins."""
        ...

    async def last_event_seq(self, execution_id: str) -> int:
        """The highest event sequence number of an execution (0 if none)."""
        ...

    async def list_events(
        self, execution_id: str, after: int = 0, limit: int = 1000
    ) -> list[ExecutionEvent]:
        """Events of an execution with `seq > after`, in order."""
        ...

    async def count_active_executions(self, client_id: str) -> int:
        """Executions of the client that are pending or running."""
        ...

    async def cache_get(self, key: str, now: datetime) -> tuple[StorageRef, dict[str, Any]] | None:
        """A cached stage result that has not expired, or None."""
        ...

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
        ...

    # -- leases ------------------------------------------------------------------------------

    async def lease_of(self, execution_id: str) -> Lease:
        """Who runs an execution, until when. Raises `NotFoundError`."""
        ...

    async def list_leases(self) -> list[Lease]:
        """The leases of executions that are runnable or held, oldest first."""
        ...

    async def claim_ready(
        self,
        owner: str,
        now: datetime,
        expires_at: datetime,
        limit: int,
        dead: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> list[tuple[str, int]]:
        """Take the leases of up to `limit` runnable executions nobody holds (never held,
        expired, or held by one of the `dead` owners), except those in `exclude`; their ids
        and new tokens."""
        ...

    async def renew_leases(
        self, owner: str, leases: Mapping[str, int], expires_at: datetime
    ) -> list[str]:
        """Extend `owner`'s leases (execution id → token); the ids it no longer holds."""
        ...

    async def release_leases(
        self, owner: str, leases: Mapping[str, int], *, finished: bool = False
    ) -> None:
        """Hand `owner`'s leases back, for another process to take at once; `finished`: the
        executions ended and were reported, and nobody need run them again."""
        ...
