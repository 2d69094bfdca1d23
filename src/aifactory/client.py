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

import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ._exceptions import BadInputError
from .models import User
from .protocol.codec import structure
from .resources.accounts import AsyncApiKeys, AsyncClients, AsyncUsers
from .resources.deliverables import (
    AsyncAudit,
    AsyncDeliverables,
    AsyncNotifications,
    AsyncWebhooks,
)
from .resources.executions import AsyncExecutions
from .resources.metrics import AsyncMetrics
from .resources.requests import AsyncRequests, AsyncTemplates

if TYPE_CHECKING:
    import httpx

    from ._embedded import EmbeddedFactory
    from .config import FactoryConfig
    from .kam.notifier import Notifier
    from .transports.factory import FactoryTransport

__all__ = ["AsyncFactory", "AsyncSession"]


class AsyncSession:
    """A logged-in view of the factory: the operations this user may call."""

    def __init__(
        self, transport: FactoryTransport, token: str, user: User, context: dict[str, Any]
    ) -> None:
        self._transport = transport
        self.token = token
        self.user = user
        self.context = context
        self.clients = AsyncClients(self)
        self.users = AsyncUsers(self)
        self.api_keys = AsyncApiKeys(self)
        self.requests = AsyncRequests(self)
        self.templates = AsyncTemplates(self)
        self.executions = AsyncExecutions(self)
        self.deliverables = AsyncDeliverables(self)
        self.notifications = AsyncNotifications(self)
        self.audit = AsyncAudit(self)
        self.webhooks = AsyncWebhooks(self)
        self.metrics = AsyncMetrics(self)

    def __repr__(self) -> str:
        return f"<AsyncSession {self.user.email} ({self.user.role.value})>"

    async def logout(self) -> None:
        """End this session; its token stops working."""
        await self._transport.call("auth.logout", self.token)

    async def change_password(self, old_password: str, new_password: str) -> None:
        """Change your own password: give the current one; the new one is 12 to 1024
        characters. Your other sessions end; this one stays. Raises `AuthenticationError`
        (the current password is wrong), `BadInputError`."""
        await self._transport.call(
            "auth.change_password",
            self.token,
            old_password=old_password,
            new_password=new_password,
        )


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
        memory). `notifier` is one notifier more: in-app notifications are always kept, and
        the config's `notifiers` and `webhooks` add others. Enter it with `async with`
        before use.
        """
        # The whole factory is imported only by those who embed one: a remote client's
        # `import aifactory` stays light.
        from ._embedded import EmbeddedFactory
        from .config import FactoryConfig
        from .transports.factory import InProcessFactoryTransport

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
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> AsyncFactory:
        """A client for a remote factory's HTTP API at `base_url`.

        Log in with `login(...)`; or give an `api_key` (or a session `token`) here and get
        its view with `session()`. Pass an `httpx.AsyncClient` to share connections or to
        call an ASGI app in process (`httpx.ASGITransport`).

        An `https://` factory's certificate is always verified: against the CA certificates
        in the PEM file `ca_bundle` when given (a private CA), else the system's; a
        certificate not trusted fails every call with `TransportError`. Raises
        `BadInputError` for an unreadable `ca_bundle`, or one given with a `client`.
        """
        from .transports.http import HttpFactoryTransport

        transport = HttpFactoryTransport(base_url, client=client, ca_bundle=ca_bundle)
        factory = cls(transport)
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
