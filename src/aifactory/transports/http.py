"""`HttpFactoryTransport`: the client's operations over HTTP, with httpx.

Paths and reply types come from the operation table, so the remote client cannot drift from
the embedded one. Error bodies come back as the same exception classes as embedded, with the
server's request id. GET and PUT calls (idempotent) are sent again when no connection could
be made; nothing else is. A failure to connect is a `ConnectionFailedError`, no answer in
time a `TransportTimeoutError`.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from .._exceptions import AIFactoryError, BadInputError, PermissionDeniedError, TransportError
from .._tracing import inject
from ..api.arguments import sound
from ..api.operations import operation
from ..auth.tokens import API_KEY_PREFIX
from ..kam.accounts import LoginResult
from ..models import User
from ..protocol.codec import structure, unstructure
from ._http import error_for, resend_policy, tls_context, transport_error

__all__ = ["HttpFactoryTransport"]

SESSION_HEADER = "x-bitware-session-token"
_IDEMPOTENT = frozenset({"GET", "PUT"})


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    raise error_for(response, body)


class HttpFactoryTransport:
    """Carries operations to a factory's HTTP API at `base_url`.

    An `https://` server's certificate must chain to a CA of `ca_bundle` (a PEM file), else
    to the system's. Raises `BadInputError` for an unusable `ca_bundle`, or one given with
    a `client` (whose own settings then decide).
    """

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 30.0,
        connect_retries: int = 2,
        long_poll_s: float = 20.0,
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> None:
        if client is not None and ca_bundle is not None:
            raise BadInputError("give either a client or a ca_bundle: the client's own TLS applies")
        self.base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_s, verify=tls_context(ca_bundle))
        self._retries = connect_retries
        self.long_poll_s = long_poll_s

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.base_url + path
        # A request that never left is sent again if it is idempotent (GET, PUT); one that
        # left and got no answer is not: it may have been carried out.
        resends = self._retries if method in _IDEMPOTENT else 0

        async def send() -> httpx.Response:
            try:
                return await self._client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                raise transport_error(
                    exc, f"{method} {path} to {self.base_url} failed ({type(exc).__name__})"
                ) from exc

        return await resend_policy(resends, 0.1).call(send, sleep=anyio.sleep)

    async def login(self, username: str, password: str, login_type: str) -> LoginResult:
        """`POST /api/auth/login`. Raises `AuthenticationError` like the embedded factory."""
        for field, value in (("username", username), ("password", password)):
            sound(value, field)  # as the server would: text JSON can carry at all
        response = await self._send(
            "POST",
            operation("auth.login").path,
            json={"username": username, "password": password, "loginType": login_type},
        )
        _raise_for(response)
        body = response.json()
        return LoginResult(
            body["sessionToken"],
            structure(body["user"], User),
            datetime.fromisoformat(body["expiresAt"]),
            body["kamContext"],
        )

    async def call(self, name: str, token: str, /, **arguments: Any) -> Any:
        """Carry out operation `name`, authenticated by a session token or an API key."""
        op = operation(name)
        for field, value in unstructure(
            {k: v for k, v in arguments.items() if v is not None}
        ).items():
            # Refused as the server refuses them, before a value JSON or a URL cannot carry
            # (a lone surrogate, NaN) fails in an encoder with an error of another kind.
            sound(value, field)
        path = op.path
        for param in op.path_params:
            path = path.replace("{" + param + "}", quote(str(arguments.pop(param)), safe=""))
        header = "X-API-Key" if token.startswith(API_KEY_PREFIX + "_") else SESSION_HEADER
        headers = {header: token}
        inject(headers)  # a caller's span (if it traces) continues in the factory
        kwargs: dict[str, Any] = {"headers": headers}
        given = {k: v for k, v in arguments.items() if v is not None}
        if op.method == "GET":
            kwargs["params"] = {
                k: ("true" if v else "false") if isinstance(v, bool) else str(v)
                for k, v in given.items()
            }
        elif given:
            kwargs["json"] = unstructure(given)
        response = await self._send(op.method, path, **kwargs)
        _raise_for(response)
        if op.kind == "bytes":
            return response.content
        if response.status_code == 204 or op.reply is None:
            return None
        try:
            return structure(response.json(), op.reply)
        except (ValueError, AIFactoryError) as exc:
            raise TransportError(f"{name}: the server's reply does not fit its type") from exc

    async def changed(self, token: str, execution_id: str, timeout_s: float) -> None:
        """Nothing to do: the server already held the events call open (long polling)."""

    async def reported(self, token: str, execution_id: str) -> None:
        """Nothing to do: the server tells an execution's end once it is settled."""

    async def bootstrap_admin(self, email: str, password: str | None) -> str:
        """Refused: the first admin is made where the data lives (`aifactory init`)."""
        raise PermissionDeniedError(
            "the first admin is created on the server's home (aifactory init), not over HTTP"
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this transport created it."""
        if self._owns_client:
            await self._client.aclose()
