"""Client → factory transports: how `AsyncFactory` reaches the services.

A transport carries one operation of the `api` table at a time. The in-process transport
authenticates the session, checks the table's permission and calls the service method; the
HTTP transport (for remote deployments) sends the same operation over the wire.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

from .._embedded import EmbeddedFactory
from .._exceptions import BadInputError, ConflictError
from ..api.arguments import bind
from ..api.operations import authorize, operation
from ..auth.tokens import parse_api_key
from ..kam.accounts import LoginResult
from ..protocol.codec import unstructure

__all__ = ["FactoryTransport", "InProcessFactoryTransport"]


class FactoryTransport(Protocol):
    """Carries operations from a client to a factory.

    `long_poll_s` is how long the factory may hold an events call open waiting for news
    (remote); 0 means the client waits with `changed` instead (in process).
    """

    long_poll_s: float

    async def login(self, username: str, password: str, login_type: str) -> LoginResult:
        """Open a session."""
        ...

    async def call(self, name: str, token: str, /, **arguments: Any) -> Any:
        """Carry out operation `name` for the session `token`."""
        ...

    async def changed(self, token: str, execution_id: str, timeout_s: float) -> None:
        """Wait until an execution may have new events (or `timeout_s` passes)."""
        ...

    async def reported(self, token: str, execution_id: str) -> None:
        """Wait until a finished execution's end has been reported (its request settled),
        where the factory cannot tell so with the events themselves."""
        ...

    async def bootstrap_admin(self, email: str, password: str | None) -> str:
        """Create the first admin (only where the caller owns the factory's data)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class InProcessFactoryTransport:
    """Calls the services of an `EmbeddedFactory` directly."""

    long_poll_s = 0.0

    def __init__(self, factory: EmbeddedFactory) -> None:
        self.factory = factory

    async def login(
        self, username: str, password: str, login_type: str, *, client_address: str | None = None
    ) -> LoginResult:
        """Check credentials and open a session; `client_address` is the address of whoever
        typed them (the web pages give their browser's), which failed logins are throttled by
        too."""
        operation("auth.login")
        given = {"username": username, "password": password, "login_type": login_type}
        return await self.factory.accounts.login(
            **bind(self.factory.params["auth.login"], given), client_address=client_address
        )

    async def call(self, name: str, token: str, /, **arguments: Any) -> Any:
        """Authenticate `token`, check the operation's permission, and run it."""
        accounts = self.factory.accounts
        is_key = parse_api_key(token) is not None
        principal = await (
            accounts.authenticate_api_key(token) if is_key else accounts.authenticate(token)
        )
        authorize(name, principal.role)
        if name == "auth.logout":
            if is_key:
                raise BadInputError("API keys are revoked, not logged out")
            return await self.factory.accounts.logout(principal, token)
        # Checked as the HTTP server checks them: in their JSON form, against the handler's
        # parameters. An argument given as None is left out, as over HTTP, for its default.
        given = unstructure({k: v for k, v in arguments.items() if v is not None})
        with self.factory.tracer.span(name, {"aifactory.role": principal.role.value}):
            result = self.factory.handlers[name](
                principal, **bind(self.factory.params[name], given)
            )
            return await result if inspect.isawaitable(result) else result

    async def changed(self, token: str, execution_id: str, timeout_s: float) -> None:
        """Wake when the execution has news. Raises `ConflictError` if nothing runs it."""
        orchestrator = self.factory.orchestrator
        if not orchestrator.is_running(execution_id):
            execution = await self.factory.store.get_execution(execution_id)
            if not execution.status.is_final:
                raise ConflictError(
                    f"execution {execution_id} is {execution.status.value} but not running "
                    "(its process stopped); resume it with executions.resume()",
                    details={"status": execution.status.value},
                )
            return
        await orchestrator.changed(execution_id, timeout_s)

    async def reported(self, token: str, execution_id: str) -> None:
        """Wait while this process is still reporting the execution's end."""
        await self.factory.orchestrator.wait(execution_id)

    async def bootstrap_admin(self, email: str, password: str | None) -> str:
        """Create the first admin; owning the data folder is the authority to do so."""
        return await self.factory.accounts.bootstrap_admin(email, password)

    async def aclose(self) -> None:
        """Nothing to release: the embedded factory is closed by its owner."""
