"""Prometheus exposition: `GET /metrics` on every service, and HTTP request metrics.

`/metrics` is served only when the service has a metrics token (`FactoryConfig.metrics_token`,
`AIFACTORY_METRICS_TOKEN`), to callers that send it as `Authorization: Bearer <token>`;
without a token the route does not exist (404). HTTP requests are counted by service,
method, route template (`/api/kam/requests/{request_id}`, never the path itself, so label
values stay few) and status, and timed by service and route.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.exposition import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..orchestrator.telemetry import PrometheusTelemetry

__all__ = ["HttpMetrics", "expose_metrics"]


class HttpMetrics:
    """ASGI middleware: counts and times each HTTP request (`requests`, `seconds`)."""

    def __init__(self, app: ASGIApp, requests: Any, seconds: Any, service: str) -> None:
        self.app = app
        self.requests, self.seconds, self.service = requests, seconds, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        began = time.perf_counter()

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.requests.labels(self.service, scope["method"], template, str(status)).inc()
            self.seconds.labels(self.service, template).observe(time.perf_counter() - began)


def _bearer_matches(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.encode(), token.encode())


def expose_metrics(
    app: Starlette, telemetry: PrometheusTelemetry, token: str | None, service: str
) -> Starlette:
    """`app` with its HTTP requests counted in `telemetry` and, given a `token`, the
    telemetry's registry served at `/metrics` to callers that send it as a bearer token
    (401 otherwise)."""
    registry = telemetry.registry
    app.add_middleware(
        HttpMetrics,
        requests=telemetry.http_requests,
        seconds=telemetry.http_seconds,
        service=service,
    )
    if token is None:
        return app

    async def metrics(request: Request) -> Response:
        if not _bearer_matches(request, token):
            return Response(
                b'{"error": {"code": "authentication_failed", "message": "send the metrics '
                b'token as a bearer token", "details": {}}}',
                status_code=401,
                media_type="application/json",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.router.routes.append(Route("/metrics", metrics, methods=["GET"]))
    return app
