"""`AsyncFactory`, the client, and `Factory`, its synchronous facade.

The same client works against an embedded factory (everything in this process) or, through
another transport, a remote one. Logging in returns a session view whose attributes group
the operations: `clients`, `users`, `requests`, `templates`, `executions`, `deliverables`,
`notifications`, `audit`.

```python
import aifactory

with aifactory.embedded(home="./.aifactory") as factory:
    password = factory.bootstrap_admin("admin@example.com")
    admin = factory.login("admin@example.com", password, login_type="admin")
    acme = admin.clients.create(name="Acme", tier="standard", monthly_budget_usd=50)
```
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
import tenacity

from ._embedded import EmbeddedFactory
from ._exceptions import BadInputError, TransportError
from .config import FactoryConfig
from .kam.notifier import Notifier
from .kam.recommend import Recommendation
from .models import (
    ApiKeyInfo,
    AuditEvent,
    Client,
    Deliverable,
    Execution,
    ExecutionEvent,
    ExecutionOwner,
    Notification,
    Request,
    Role,
    StageRun,
    Template,
    Tier,
    Urgency,
    User,
)
from .protocol.codec import structure
from .transports.factory import FactoryTransport, InProcessFactoryTransport
from .transports.http import HttpFactoryTransport

__all__ = ["AsyncFactory", "AsyncSession"]


#: How long following an execution (`executions.events`, `executions.wait`) keeps asking a
#: server it cannot reach before giving up, in seconds: long enough for a restart.
FOLLOW_OUTAGE_S = 20.0


class _Group:
    """A group of operations bound to one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _call(self, operation: str, /, **arguments: Any) -> Any:
        return await self._session._transport.call(operation, self._session.token, **arguments)


class Clients(_Group):
    """Client organisations (staff)."""

    async def create(
        self, name: str, tier: Tier | str, monthly_budget_usd: Decimal | float | int | str
    ) -> Client:
        """Create a client organisation with a tier and a monthly budget in USD."""
        return await self._call(
            "clients.create", name=name, tier=tier, monthly_budget_usd=monthly_budget_usd
        )

    async def list(self) -> list[Client]:
        """Every client organisation."""
        return await self._call("clients.list")

    async def get(self, client_id: str) -> Client:
        """One client (client users: only their own)."""
        return await self._call("clients.get", client_id=client_id)


class Users(_Group):
    """Users (staff)."""

    async def create(
        self,
        email: str,
        password: str,
        role: Role | str = Role.CLIENT,
        client_id: str | None = None,
        display_name: str = "",
    ) -> User:
        """Create a user; client users belong to `client_id`."""
        return await self._call(
            "users.create",
            email=email,
            password=password,
            role=role,
            client_id=client_id,
            display_name=display_name,
        )

    async def list(self, client_id: str | None = None) -> list[User]:
        """Users, optionally of one client."""
        return await self._call("users.list", client_id=client_id)


class ApiKeys(_Group):
    """API keys for external clients (`X-API-Key`)."""

    async def create(self, name: str = "", user_id: str | None = None) -> ApiKeyInfo:
        """A new key for you (staff: for `user_id`); its `key` is shown only in this reply."""
        return await self._call("api_keys.create", name=name, user_id=user_id)

    async def list(self, user_id: str | None = None) -> builtins.list[ApiKeyInfo]:
        """Keys (never the keys themselves): yours; staff may name a user."""
        return await self._call("api_keys.list", user_id=user_id)

    async def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key at once."""
        return await self._call("api_keys.revoke", key_id=key_id)


class Requests(_Group):
    """Requests for work."""

    async def create(
        self,
        title: str,
        description: str = "",
        urgency: Urgency | str = Urgency.NORMAL,
        category: str = "general",
        client_id: str | None = None,
    ) -> Request:
        """Submit a request (staff name the `client_id` they submit for)."""
        return await self._call(
            "requests.create",
            title=title,
            description=description,
            urgency=urgency,
            category=category,
            client_id=client_id,
        )

    async def list(self, client_id: str | None = None) -> list[Request]:
        """Requests, newest first (client users: their own)."""
        return await self._call("requests.list", client_id=client_id)

    async def get(self, request_id: str) -> Request:
        """One request."""
        return await self._call("requests.get", request_id=request_id)

    async def assign_template(
        self, request_id: str, template_name: str, parameters: dict[str, Any] | None = None
    ) -> Request:
        """Assign a pipeline template and its parameters (staff)."""
        return await self._call(
            "requests.assign_template",
            request_id=request_id,
            template_name=template_name,
            parameters=parameters,
        )

    async def execute(
        self, request_id: str, resources: Mapping[str, Any] | None = None
    ) -> Execution:
        """Start the request's pipeline in the background (staff).

        `resources`: `max_workers` (stages side by side), `timeout_ms` (the whole
        execution's limit), `cache` (reuse results of equal inputs; default true).
        """
        return await self._call("requests.execute", request_id=request_id, resources=resources)


class Templates(_Group):
    """The pipeline template catalogue."""

    async def list(self, tier: Tier | str | None = None) -> list[Template]:
        """Templates allowed for `tier` (client users: their own tier)."""
        return await self._call("templates.list", tier=tier)

    async def get(self, name: str) -> Template:
        """One template."""
        return await self._call("templates.get", name=name)

    async def recommend(
        self, request_id: str, limit: int = 3, use_llm: bool | None = None
    ) -> builtins.list[Recommendation]:
        """Templates that fit a request, ranked with confidence and reasons (staff)."""
        return await self._call(
            "templates.recommend", request_id=request_id, limit=limit, use_llm=use_llm
        )


class Executions(_Group):
    """Pipeline executions: status, stages, events, waiting and resuming."""

    async def get(self, execution_id: str) -> Execution:
        """An execution's current record."""
        return await self._call("executions.get", execution_id=execution_id)

    async def stages(self, execution_id: str) -> list[StageRun]:
        """Its stage runs, in template order."""
        return await self._call("executions.stages", execution_id=execution_id)

    async def events(self, execution_id: str, after: int = 0) -> AsyncIterator[ExecutionEvent]:
        """Follow its events from sequence number `after` until it has finished.

        A server that cannot be reached for a moment (restarting) is asked again, with
        backoff, for about `FOLLOW_OUTAGE_S`; then the `TransportError` is raised.
        """
        transport, token = self._session._transport, self._session.token
        while True:
            batch: list[ExecutionEvent] = await self._through_outages(
                "executions.events",
                execution_id=execution_id,
                after=after,
                wait_s=transport.long_poll_s,
            )
            for event in batch:
                after = event.seq
                yield event
            if batch:
                continue
            execution = await self._through_outages("executions.get", execution_id=execution_id)
            if execution.status.is_final:
                await transport.reported(token, execution_id)
                # The final status and the last events commit together: one more read drains.
                for event in await self._call(
                    "executions.events", execution_id=execution_id, after=after
                ):
                    yield event
                return
            await transport.changed(token, execution_id, 1.0)

    async def _through_outages(self, operation: str, /, **arguments: Any) -> Any:
        # Following is a long affair: a server restart meanwhile should not end it. Only the
        # transport failing is retried; every answer, refusals included, is final.
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(TransportError),
            wait=tenacity.wait_exponential(multiplier=0.25, max=4.0),
            stop=tenacity.stop_after_delay(FOLLOW_OUTAGE_S),
            sleep=anyio.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._call(operation, **arguments)
        raise AssertionError("unreachable: tenacity re-raises")

    async def wait(self, execution_id: str, timeout_s: float | None = None) -> Execution:
        """Wait until the execution has finished; return its final record.

        Raises `TimeoutError` after `timeout_s`, `ConflictError` if nothing runs it.
        """
        with anyio.fail_after(timeout_s):
            async for _ in self.events(execution_id):
                pass
        return await self.get(execution_id)

    async def metrics(self, execution_id: str) -> dict[str, Any]:
        """Durations, attempts, tokens, cost and bytes stored, per stage and in total."""
        return await self._call("executions.metrics", execution_id=execution_id)

    async def cancel(self, execution_id: str) -> Execution:
        """Stop it; it (and its request) end `cancelled`."""
        return await self._call("executions.cancel", execution_id=execution_id)

    async def retry(self, execution_id: str) -> Execution:
        """Run a failed or cancelled execution again, reusing committed stages (staff)."""
        return await self._call("executions.retry", execution_id=execution_id)

    async def prune(self, older_than_days: float = 30) -> dict[str, int]:
        """Forget checkpoints and events of executions finished long ago, and the stage data
        of those that completed (admins). Returns what went, by kind."""
        return await self._call("executions.prune", older_than_days=older_than_days)

    async def resume(self, execution_id: str) -> Execution:
        """Continue an interrupted execution from its last checkpoint (staff)."""
        return await self._call("executions.resume", execution_id=execution_id)

    async def owners(self) -> builtins.list[ExecutionOwner]:
        """Executions that want running and which replica runs each (staff): `running`,
        `interrupted` (its replica gone; another takes it over) or `waiting`."""
        return await self._call("executions.owners")


class Deliverables(_Group):
    """What executions delivered."""

    async def list(self, request_id: str) -> list[Deliverable]:
        """Deliverables of a request."""
        return await self._call("deliverables.list", request_id=request_id)

    async def get(self, deliverable_id: str) -> Deliverable:
        """One deliverable's record."""
        return await self._call("deliverables.get", deliverable_id=deliverable_id)

    async def download(self, deliverable_id: str) -> bytes:
        """Its bytes, verified against the stored sha256."""
        return await self._call("deliverables.download", deliverable_id=deliverable_id)


class Notifications(_Group):
    """Your notifications."""

    async def list(self, unread_only: bool = False) -> list[Notification]:
        """Newest first."""
        return await self._call("notifications.list", unread_only=unread_only)

    async def mark_read(self, notification_id: str) -> None:
        """Mark one read."""
        await self._call("notifications.mark_read", notification_id=notification_id)


class Audit(_Group):
    """The audit log (admins)."""

    async def list(self, action: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """Newest first, optionally of one action."""
        return await self._call("audit.list", action=action, limit=limit)


class AsyncSession:
    """A logged-in view of the factory: the operations this user may call."""

    def __init__(
        self, transport: FactoryTransport, token: str, user: User, context: dict[str, Any]
    ) -> None:
        self._transport = transport
        self.token = token
        self.user = user
        self.context = context
        self.clients = Clients(self)
        self.users = Users(self)
        self.api_keys = ApiKeys(self)
        self.requests = Requests(self)
        self.templates = Templates(self)
        self.executions = Executions(self)
        self.deliverables = Deliverables(self)
        self.notifications = Notifications(self)
        self.audit = Audit(self)

    def __repr__(self) -> str:
        return f"<AsyncSession {self.user.email} ({self.user.role.value})>"

    async def logout(self) -> None:
        """End this session; its token stops working."""
        await self._transport.call("auth.logout", self.token)


class AsyncFactory:
    """The asynchronous client. Use `AsyncFactory.embedded()` with `async with`."""

    def __init__(self, transport: FactoryTransport, runtime: EmbeddedFactory | None = None) -> None:
        self._transport = transport
        self._runtime = runtime
        self._open = False

    @classmethod
    def embedded(
        cls,
        home: str | Path | None = None,
        *,
        config: FactoryConfig | None = None,
        notifier: Notifier | None = None,
    ) -> AsyncFactory:
        """A factory running in this process, its data in `home` (default `./.aifactory`).

        Pass `config` for full control (`FactoryConfig(home=None)` keeps everything in
        memory). Enter it with `async with` before use.
        """
        if config is None:
            config = FactoryConfig.from_environment(home)
        runtime = EmbeddedFactory(config, notifier)
        return cls(InProcessFactoryTransport(runtime), runtime)

    async def __aenter__(self) -> Self:
        if self._runtime is not None and not self._open:
            await self._runtime.__aenter__()
            self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop background executions (they can be resumed later) and close the factory."""
        await self._transport.aclose()
        if self._runtime is not None and self._open:
            self._open = False
            await self._runtime.__aexit__(None, None, None)

    @classmethod
    def connect(
        cls,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> AsyncFactory:
        """A client for a remote factory's HTTP API at `base_url`.

        Log in with `login(...)`; or give an `api_key` (or a session `token`) here and get
        its view with `session()`. Pass an `httpx.AsyncClient` to share connections or to
        call an ASGI app in process (`httpx.ASGITransport`).
        """
        factory = cls(HttpFactoryTransport(base_url, client=client))
        factory._credential = api_key or token
        return factory

    _credential: str | None = None

    async def bootstrap_admin(self, email: str, password: str | None = None) -> str:
        """Create the first admin and return its password (generated if not given).

        Raises `ConflictError` once an admin exists.
        """
        return await self._transport.bootstrap_admin(email, password)

    async def login(self, username: str, password: str, login_type: str = "client") -> AsyncSession:
        """Log in; `login_type` is `client` or `admin`. Raises `AuthenticationError`."""
        result = await self._transport.login(username, password, login_type)
        return AsyncSession(self._transport, result.session_token, result.user, result.kam_context)

    async def session(self, token: str | None = None) -> AsyncSession:
        """A view for a session token or an API key (default: the one given to `connect`).

        Raises `AuthenticationError`, and `BadInputError` when there is no credential.
        """
        token = token or self._credential
        if not token:
            raise BadInputError("give a session token or API key, or log in")
        me = await self._transport.call("auth.me", token)
        # In process the user arrives as a `User`; over HTTP as its JSON form.
        user = me["user"] if isinstance(me["user"], User) else structure(me["user"], User)
        return AsyncSession(self._transport, token, user, me["kamContext"])
