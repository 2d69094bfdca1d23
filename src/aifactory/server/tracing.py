"""OpenTelemetry spans of the HTTP requests a service answers (`aifactory._tracing`).

Each request is a span of kind server named `{METHOD} {route template}` (never the path
itself), with OpenTelemetry's `http.*` attributes, continuing the trace its caller's
`traceparent` header names: so the KAM service's launch, the orchestrator service's run and
a worker service's stage are one trace. A 5xx answer ends the span in error. Nothing is
added to a service that does not trace.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._tracing import Tracer

__all__ = ["TracedRequests", "trace_requests"]

_CARRIED = (b"traceparent", b"tracestate")


class TracedRequests:
    """ASGI middleware: each HTTP request a server span of `tracer` (see the module)."""

    def __init__(self, app: ASGIApp, tracer: Tracer, service: str) -> None:
        self.app, self.tracer, self.service = app, tracer, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carried = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _CARRIED
        }
        method = scope["method"]
        status = 500
        attributes = {
            "http.request.method": method,
            "url.path": scope["path"],
            "aifactory.service": self.service,
        }

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracer.joined(carried):
            span: Any
            with self.tracer.span(method, attributes, kind="server") as span:
                try:
                    await self.app(scope, receive, send_seen)
                finally:
                    template = getattr(scope.get("route"), "path", None)
                    if template is not None:
                        span.update_name(f"{method} {template}")
                        span.set_attribute("http.route", template)
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        self.tracer.outcome(span, str(status), f"answered {status}")


def trace_requests(app: Starlette, tracer: Tracer, service: str) -> Starlette:
    """`app` with its HTTP requests traced (`TracedRequests`), if `tracer` traces."""
    if tracer.enabled:
        app.add_middleware(TracedRequests, tracer=tracer, service=service)
    return app
