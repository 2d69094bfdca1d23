"""Request ids: every HTTP request a service answers is named, so that an error a client
reports (`AIFactoryError.request_id`) can be found in the service's log."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._exceptions import AIFactoryError
from .._logs import log_context

__all__ = ["HEADER", "RequestIds", "log_error"]

HEADER = "x-request-id"
_log = logging.getLogger("aifactory.server")


class RequestIds:
    """ASGI middleware: a fresh id for each HTTP request, in `request.state.request_id` and
    in the answer's `x-request-id` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(12)}"
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER.encode(), request_id.encode())

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        with log_context(request_id=request_id):  # on every line logged meanwhile
            await self.app(scope, receive, send_named)


def request_id_of(request: Request) -> str | None:
    """The id `RequestIds` gave `request` (None outside it)."""
    found: Any = getattr(request.state, "request_id", None)
    return found if isinstance(found, str) else None


def log_error(request: Request, error: BaseException, status: int) -> None:
    """Log an error answer with its request id: refusals (4xx) briefly, failures (5xx) with
    their traceback, which never goes to the caller."""
    request_id = request_id_of(request)
    code = error.code if isinstance(error, AIFactoryError) else "internal_error"
    if status >= 500:
        _log.error(
            "%s %s -> %d %s [%s]",
            request.method,
            request.url.path,
            status,
            code,
            request_id,
            exc_info=error,
        )
    else:
        _log.info("%s %s -> %d %s [%s]", request.method, request.url.path, status, code, request_id)
