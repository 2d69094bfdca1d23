"""OpenTelemetry spans, when asked for (`FactoryConfig.tracing`, extra `otel`).

A factory traces nothing by default: its `Tracer` hands out one shared no-op context
manager, and OpenTelemetry is not imported. With `tracing` on, an `OpenTelemetryTracer`
makes these spans (attribute names in OpenTelemetry's conventions where one exists):

| span                                 | kind            | made by, for                        |
|--------------------------------------|-----------------|-------------------------------------|
| `{METHOD} {route}`                   | server          | every served app, an HTTP request   |
| `{operation}` (`requests.execute`)   | internal        | the operation table, a call         |
| `execution {template}`               | internal        | the orchestrator, a run             |
| `stage {stage_id}`                   | internal        | the orchestrator, a stage attempt   |
| `handshake {worker}` (`process`, `acknowledge`) | client (remote) | the orchestrator, a step |
| `worker process {worker}` (and the others) | internal  | a worker service, a step            |
| `chat {model}`                       | client          | a model call (`gen_ai.*` attributes)|

**One request, one trace.** An execution keeps the W3C `traceparent` of the span that
created it (`Execution.trace`), and each run of it, on whichever replica, is a child of
that span. Calls between services and to worker services carry the current context in
`traceparent`/`tracestate` headers (`inject`); the served apps continue it (`joined`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

__all__ = [
    "NO_TRACING",
    "Attributes",
    "OpenTelemetryTracer",
    "Tracer",
    "inject",
    "open_tracer",
    "otlp_provider",
    "traceparent",
]

#: Attribute values a span takes.
Attributes = Mapping[str, str | int | float | bool]

#: The no-op span: one shared, reusable context manager, so a span costs nothing when off.
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()

#: OpenTelemetry's context and propagation API, once a tracer (or the application) has
#: imported it; until then `inject` and `traceparent` do nothing (no span can be current).
_otel: Any = None


def _loaded() -> Any:
    """`_otel`, made at first use once the application has imported OpenTelemetry itself
    (so that a client's calls continue its own spans), else None, importing nothing."""
    global _otel
    if _otel is None and "opentelemetry.trace" in sys.modules:
        from opentelemetry import context, propagate
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        _otel = _Api(context, propagate, TraceContextTextMapPropagator())
    return _otel


class Tracer:
    """Tracing off: every span is a shared no-op, and headers are left alone."""

    enabled = False

    def span(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        kind: str = "internal",
        parent: str | None = None,
    ) -> contextlib.AbstractContextManager[Any]:
        """A span named `name`, current inside the block (a child of the current one, or
        of the W3C `parent` traceparent given). `kind`: internal, server or client. An
        exception that leaves the block is recorded on the span, which ends in error."""
        return _NO_SPAN

    def joined(self, headers: Mapping[str, str]) -> contextlib.AbstractContextManager[Any]:
        """Inside the block, the trace context carried by `headers` (an HTTP request's) is
        current, so spans started there continue the caller's trace."""
        return _NO_SPAN

    def outcome(self, span: Any, status: str, error: str | None = None) -> None:
        """Say on `span` (what `span()` gave) how its work ended: `aifactory.status`, and
        an error status with `error` as its description when there is one."""

    def annotate(self, name: str, value: str | int | float | bool) -> None:
        """Set the attribute `name` on the current span (learnt after it started)."""


#: The tracer of a factory that does not trace.
NO_TRACING = Tracer()


class OpenTelemetryTracer(Tracer):
    """Spans through OpenTelemetry, to `provider` (a `TracerProvider`; None: the global one,
    which the application or `opentelemetry-instrument` sets up).

    Raises `BadInputError` when OpenTelemetry is not installed.
    """

    enabled = True

    def __init__(self, provider: Any = None) -> None:
        global _otel
        try:
            from opentelemetry import context, propagate, trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError as exc:
            from ._exceptions import BadInputError

            hint = "tracing needs OpenTelemetry: pip install 'aifactory[otel]'"
            raise BadInputError(hint) from exc
        from ._version import __version__

        _otel = _Api(context, propagate, TraceContextTextMapPropagator())
        self._api = _otel
        self._tracer = trace.get_tracer("aifactory", __version__, tracer_provider=provider)
        self._trace = trace
        self._error = trace.StatusCode.ERROR
        self._kinds = {
            "internal": trace.SpanKind.INTERNAL,
            "server": trace.SpanKind.SERVER,
            "client": trace.SpanKind.CLIENT,
        }

    def span(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        kind: str = "internal",
        parent: str | None = None,
    ) -> contextlib.AbstractContextManager[Any]:
        """See `Tracer.span`; the block gets the OpenTelemetry span."""
        context = None
        if parent is not None:
            context = self._api.w3c.extract({"traceparent": parent})
        # The SDK's own context manager, not wrapped: spans are made several per stage.
        found: contextlib.AbstractContextManager[Any] = self._tracer.start_as_current_span(
            name, context=context, kind=self._kinds[kind], attributes=attributes
        )
        return found

    def annotate(self, name: str, value: str | int | float | bool) -> None:
        """See `Tracer.annotate`."""
        self._trace.get_current_span().set_attribute(name, value)

    def outcome(self, span: Any, status: str, error: str | None = None) -> None:
        """See `Tracer.outcome`."""
        span.set_attribute("aifactory.status", status)
        if error is not None:
            span.set_status(self._error, error)

    @contextlib.contextmanager
    def joined(self, headers: Mapping[str, str]) -> Iterator[None]:
        """See `Tracer.joined`."""
        if "traceparent" not in headers:
            yield
            return
        token = self._api.context.attach(self._api.propagate.extract(headers))
        try:
            yield
        finally:
            self._api.context.detach(token)


class _Api:
    """What the module functions use of OpenTelemetry: its context, the configured
    propagators (for headers) and the W3C one (for `Execution.trace`)."""

    def __init__(self, context: Any, propagate: Any, w3c: Any) -> None:
        self.context, self.propagate, self.w3c = context, propagate, w3c


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current trace context to outgoing `headers` (`traceparent`, `tracestate`):
    nothing when no span is current or OpenTelemetry was never loaded."""
    api = _otel or _loaded()
    if api is not None:
        api.propagate.inject(headers)


def traceparent() -> str | None:
    """The current span's W3C `traceparent`, or None (no span, or tracing off)."""
    api = _otel or _loaded()
    if api is None:
        return None
    carrier: dict[str, str] = {}
    api.w3c.inject(carrier)
    return carrier.get("traceparent")


def open_tracer(tracing: Any) -> Tracer:
    """The tracer for `FactoryConfig.tracing`: False or None (off), True (the global
    `TracerProvider`), or a `TracerProvider`. Raises `BadInputError` as
    `OpenTelemetryTracer` does."""
    if tracing is None or tracing is False:
        return NO_TRACING
    return OpenTelemetryTracer(None if tracing is True else tracing)


def otlp_provider(service_name: str) -> Any:
    """A `TracerProvider` of the OpenTelemetry SDK that exports spans in batches over
    OTLP/HTTP, where the standard `OTEL_EXPORTER_OTLP_*` environment variables say (read by
    the exporter), as the service `service_name`. Raises `BadInputError` when the SDK or
    the exporter is not installed."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        from ._exceptions import BadInputError

        raise BadInputError(
            "exporting spans over OTLP needs OpenTelemetry: pip install 'aifactory[otel]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
