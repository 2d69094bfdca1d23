"""The factory's HTTP API: a Starlette app whose routes come from the operation table.

Each route authenticates the caller (`x-bitware-session-token`, or `X-API-Key` for external
clients), checks the table's permission and the client's tier rate limit (429 with
`Retry-After`), checks the arguments against the service method's
annotations, calls it, and answers with the codec's JSON. Every error is
`{"error": {"code", "message", "details"}}` with the status of its exception class; bad input
is always a 4xx and never loses anything.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._embedded import EmbeddedFactory
from .._exceptions import (
    AIFactoryError,
    AuthenticationError,
    BadInputError,
    PayloadTooLargeError,
)
from ..api.arguments import bind, from_query
from ..api.operations import OPERATIONS, Operation, authorize
from ..config import FactoryConfig
from ..kam.ratelimit import RateLimiter
from ..models import Principal
from ..orchestrator.telemetry import PrometheusTelemetry
from ..protocol.codec import dumps, loads, unstructure
from ._request_ids import HEADER, RequestIds, log_error, request_id_of
from .health import health_routes
from .metrics import expose_metrics
from .openapi import openapi_document
from .tracing import trace_requests
from .web import web_routes

__all__ = [
    "MAX_BODY_BYTES",
    "SESSION_HEADER",
    "create_app",
    "factory_app",
    "read_body",
    "serving",
]

SESSION_HEADER = "x-bitware-session-token"
API_KEY_HEADER = "x-api-key"
MAX_BODY_BYTES = 1024 * 1024


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json")


def error_response(error: AIFactoryError) -> Response:
    """The JSON error body and status of an aifactory error (with `Retry-After` when the
    error says how long to wait)."""
    response = _json(error.to_dict(), error.status)
    retry_after = error.details.get("retry_after_s")
    if isinstance(retry_after, int | float):
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"request bodies are limited to {limit} bytes", details={"max_bytes": limit}
    )


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request's body, refused (`PayloadTooLargeError`) as soon as it passes `limit`
    bytes: at once when its `Content-Length` says so, else while it streams in (chunked), so
    that an oversize body never sits in memory. Raises `BadInputError` for a malformed
    `Content-Length`."""
    length = request.headers.get("content-length")
    if length is not None:
        if not (length.isascii() and length.isdigit()):
            raise BadInputError("malformed Content-Length header")
        if len(length) > 19 or int(length) > limit:
            raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


async def _body(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}
    data = loads(raw)
    if not isinstance(data, dict):
        raise BadInputError("the JSON body must be an object")
    return data


class _Api:
    def __init__(self, factory: EmbeddedFactory) -> None:
        self.factory = factory
        self.limiter = RateLimiter(factory.store, factory.config.clock)
        self.params = factory.params
        self.max_body_bytes = factory.config.max_body_bytes

    async def principal(self, request: Request) -> tuple[Principal, str | None]:
        accounts = self.factory.accounts
        token = request.headers.get(SESSION_HEADER)
        if token:
            return await accounts.authenticate(token), token
        key = request.headers.get(API_KEY_HEADER)
        if key:
            return await accounts.authenticate_api_key(key), None
        raise AuthenticationError(
            f"send a session token ({SESSION_HEADER}) or an API key (X-API-Key)"
        )

    async def limit(self, principal: Principal) -> None:
        """Client organisations call the API at their tier's pace; staff are not limited."""
        if principal.client_id is None or not self.factory.config.api_rate_limits:
            return
        client = await self.factory.store.get_client(principal.client_id)
        await self.limiter.take(client.id, client.limits.rate_limit_per_minute)

    async def arguments(
        self, op: Operation, request: Request, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        params = self.params[op.name]
        by_name = {p.name: p for p in params}
        given: dict[str, Any] = dict(request.path_params)
        if body is None:
            fields = dict(request.query_params)
            given |= {
                name: from_query(by_name[name], text) if name in by_name else text
                for name, text in fields.items()
                if name not in given
            }
        else:
            fields = body
            given |= {name: v for name, v in fields.items() if name not in given}
        repeated = sorted(set(fields) & set(op.path_params))
        if repeated:  # a path segment given again
            raise BadInputError(f"unknown field {repeated[0]!r}", details={"field": repeated[0]})
        return bind(params, given)

    def endpoint(self, op: Operation) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                # The body is read (within the size limit) before any authentication work.
                body = None if op.method == "GET" else await _body(request, self.max_body_bytes)
                if op.name == "auth.login":
                    assert body is not None
                    return await self.login(request, body)
                principal, token = await self.principal(request)
                authorize(op.name, principal.role)
                await self.limit(principal)
                if op.name == "auth.logout":
                    if token is None:
                        raise BadInputError("API keys are revoked, not logged out")
                    await self.factory.accounts.logout(principal, token)
                    return Response(status_code=204)
                arguments = await self.arguments(op, request, body)
                with self.factory.tracer.span(op.name, {"aifactory.role": principal.role.value}):
                    result = self.factory.handlers[op.name](principal, **arguments)
                    if inspect.isawaitable(result):
                        result = await result
            except AIFactoryError as exc:
                log_error(request, exc, exc.status)
                return error_response(exc)
            except Exception as exc:  # a bug: answered here, not re-raised
                # Starlette's last-resort handler re-raises after answering, and uvicorn
                # then drops the keep-alive connection; answered here, the connection
                # stays usable. The traceback goes to the log only.
                return _internal_error(request, exc)
            if op.kind == "bytes":
                return Response(result, media_type=op.media_type)
            if result is None:
                return Response(status_code=204)
            return _json(unstructure(result))

        handle.__name__ = op.name.replace(".", "_")
        return handle

    async def login(self, request: Request, body: dict[str, Any]) -> Response:
        unknown = sorted(set(body) - {"username", "password", "loginType"})
        if unknown:
            raise BadInputError(f"unknown fields {unknown}", details={"fields": unknown})
        given = {"login_type" if k == "loginType" else k: v for k, v in body.items()}
        address = request.client.host if request.client else None
        result = await self.factory.accounts.login(
            **bind(self.params["auth.login"], given), client_address=address
        )
        return _json(
            {
                "success": True,
                "sessionToken": result.session_token,
                "expiresAt": result.expires_at.isoformat(),
                "user": unstructure(result.user),
                "kamContext": result.kam_context,
            }
        )


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return _json({"error": {"code": code, "message": str(detail), "details": {}}}, status)


async def _internal(request: Request, exc: Exception) -> Response:
    return _internal_error(request, exc)


def _internal_error(request: Request, exc: Exception) -> Response:
    # Never leak a traceback: the operator's log has it, under the request's id; the caller
    # gets a plain error and the id to quote.
    log_error(request, exc, 500)
    response = _json(
        {"error": {"code": "internal_error", "message": "internal error", "details": {}}}, 500
    )
    request_id = request_id_of(request)
    if request_id is not None:  # this answer leaves outside the middleware that names it
        response.headers[HEADER] = request_id
    return response


def factory_app(
    factory: EmbeddedFactory, operations: tuple[Operation, ...] = OPERATIONS
) -> Starlette:
    """An ASGI app serving `operations` (default: all) of an embedded factory.

    The caller owns the factory's lifecycle (enter it before serving, exit it after).
    """
    api = _Api(factory)
    routes = [Route(op.path, api.endpoint(op), methods=[op.method]) for op in operations]
    document = openapi_document(operations, api.params)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def health(request: Request) -> Response:
        return _json({"status": "ok", "service": "factory"})

    routes += [
        Route("/openapi.json", openapi),
        Route("/health", health),
        *health_routes("factory", factory.store, [factory.blobs]),
    ]
    app = Starlette(
        # The web frontend's pages (none under /api) act through the same operations.
        routes=[*routes, *web_routes(factory)],
        exception_handlers={HTTPException: _not_found, Exception: _internal},
        middleware=[Middleware(RequestIds)],
    )
    app.state.openapi = document
    trace_requests(app, factory.tracer, "factory")
    if isinstance(factory.telemetry, PrometheusTelemetry):
        expose_metrics(app, factory.telemetry, factory.config.metrics_token, "factory")
    return app


def create_app(config: FactoryConfig) -> Starlette:
    """An ASGI app that opens the factory described by `config` for as long as it is served
    (the app's lifespan): what `aifactory serve factory` runs under uvicorn."""
    return serving(EmbeddedFactory(config))


def serving(factory: EmbeddedFactory) -> Starlette:
    """`factory_app(factory)` whose lifespan enters and exits `factory`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with factory:
            yield

    app = factory_app(factory)
    app.router.lifespan_context = lifespan
    return app
