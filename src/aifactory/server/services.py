"""The account side (KAM) and the orchestrator as two services, talking by signed requests.

Split this way, the KAM service serves every client-facing operation and records executions
in the shared state; it asks the orchestrator service to run them (`POST
/api/pipelines/executions/{id}/launch`) or stop them (`.../cancel`). The orchestrator service
runs executions on the workers and reports each finished one back to the KAM service with
`POST /api/worker-sessions/{id}/complete`, where settlement (charging, deliverables,
notifications) happens. Budget holds during a run use the shared state directly. The
seed's `POST /api/pipelines/execute` (a template, context and resources) is served too, for
services that run pipelines without a request.

Service-to-service calls carry per-service HMAC signatures (`aifactory.auth.signing`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._clock import SystemClock
from .._embedded import EmbeddedFactory
from .._exceptions import (
    AIFactoryError,
    BadInputError,
    ConflictError,
    TransportError,
)
from .._tracing import inject
from ..auth.signing import SignatureVerifier, WorkerKey, sign
from ..models import Execution, Template, WorkerStatus
from ..orchestrator import Artifact, ExecutionReport, LocalControl, RetryPolicy
from ..orchestrator.telemetry import PrometheusTelemetry
from ..protocol.codec import dumps, loads, structure, unstructure
from ..transports._http import error_for, tls_context, transport_error
from ._request_ids import RequestIds, log_error
from .app import MAX_BODY_BYTES, error_response, factory_app, read_body
from .health import health_routes
from .metrics import expose_metrics
from .tracing import trace_requests

__all__ = [
    "SERVICE_RETRY",
    "HttpSink",
    "RemoteControl",
    "ServiceClient",
    "kam_app",
    "orchestrator_app",
]


class ServiceClient:
    """Signed JSON calls to another aifactory service.

    An `https://` service's certificate must chain to a CA of `ca_bundle` (a PEM file), else
    to the system's (for the client this object makes). Raises `BadInputError` for an
    unusable `ca_bundle`.
    """

    def __init__(
        self,
        base_url: str,
        key: WorkerKey,
        client: httpx.AsyncClient | None = None,
        *,
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self._client = client or httpx.AsyncClient(timeout=30.0, verify=tls_context(ca_bundle))
        self._owns = client is None
        self._clock = SystemClock()

    async def post(self, path: str, body: Any) -> Any:
        """POST `body` (plain JSON data) to `path`; the reply's JSON. Raises the error the
        other side raised, or `TransportError`."""
        raw = dumps(body)
        headers = sign("POST", path, raw, self.key, now=self._clock.now().timestamp())
        headers["content-type"] = "application/json"
        inject(headers)  # the caller's trace continues in the other service
        try:
            response = await self._client.post(self.base_url + path, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            # Named by kind only: the message can travel on to clients of the calling
            # service, who have no business learning where its peers listen.
            raise transport_error(
                exc, f"another aifactory service is unreachable ({type(exc).__name__})"
            ) from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            raise error_for(response, body, peer="another aifactory service")
        return response.json() if response.content else None

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns:
            await self._client.aclose()


#: How a call that must get through to another service is retried: waits of about 0.5, 1, 2
#: and 4 s, which ride out the other service restarting. Only for calls that are safe to
#: repeat; refusals (not found, bad input, conflicts) are never retried.
SERVICE_RETRY = RetryPolicy(initial_interval_s=0.5, maximum_interval_s=4.0, maximum_attempts=5)

Sleep = Callable[[float], Awaitable[None]]


class RemoteControl:
    """`ExecutionControl` over HTTP: the KAM service asks the orchestrator service.

    A launch that cannot get through is tried again (`retry`); one that still fails raises a
    `TransportError` saying the execution is recorded and `executions.resume` starts it.
    """

    def __init__(
        self,
        orchestrator: ServiceClient,
        retry: RetryPolicy = SERVICE_RETRY,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.orchestrator = orchestrator
        self.retry = retry
        self.sleep = sleep

    async def launch(self, execution_id: str) -> None:
        """Ask the orchestrator service to run the execution."""
        tries = 0

        async def call() -> None:
            nonlocal tries
            tries += 1
            try:
                await self.orchestrator.post(f"/api/pipelines/executions/{execution_id}/launch", {})
            except ConflictError:
                if tries == 1:
                    raise
                # An earlier try got through and only its answer was lost: it runs already.

        try:
            await self.retry.call(call, sleep=self.sleep)
        except TransportError as exc:
            raise TransportError(
                f"the orchestrator service could not start execution {execution_id} "
                f"({exc.message}); it is recorded, and executions.resume starts it once the "
                "service is back",
                details={"execution_id": execution_id},
            ) from exc

    async def cancel(self, execution_id: str) -> Execution:
        """Ask the orchestrator service to stop the execution."""
        data = await self.orchestrator.post(f"/api/pipelines/executions/{execution_id}/cancel", {})
        return structure(data, Execution)

    async def changed(self, execution_id: str, after: int, timeout_s: float) -> None:
        """Ask the orchestrator service to answer once the execution has news (a long poll).

        While that service cannot be reached (restarting, say), wait a little instead: the
        news is read from the shared state, and the service only says when to look.
        """
        try:
            await self.orchestrator.post(
                f"/api/pipelines/executions/{execution_id}/changed",
                {"after": after, "wait_s": timeout_s},
            )
        except TransportError:
            # Failing here would fail a client's `events`/`wait` through the KAM service
            # for as long as the orchestrator service is down, though nothing is wrong
            # with the execution: it may be resumed in a moment.
            await self.sleep(min(timeout_s, 1.0))

    async def workers(self) -> list[WorkerStatus]:
        """Ask the orchestrator service for its registry's view of the workers."""
        data = await self.orchestrator.post("/api/pipelines/workers", {})
        return [structure(item, WorkerStatus) for item in data]


class HttpSink:
    """`ExecutionSink` over HTTP: the orchestrator service reports to the KAM service.

    A report that cannot get through (the KAM service restarting, a network blip) is tried
    again by `retry`; one that still fails raises, which the orchestrator records as an
    `execution.finish_failed` event, and the KAM service's `resume` settles it later.
    """

    def __init__(
        self, kam: ServiceClient, retry: RetryPolicy = SERVICE_RETRY, sleep: Sleep = anyio.sleep
    ) -> None:
        self.kam = kam
        self.retry = retry
        self.sleep = sleep

    async def execution_finished(self, report: ExecutionReport) -> None:
        """`POST /api/worker-sessions/{id}/complete` with the seed's completion body."""
        execution = report.execution
        body = {
            "execution_id": execution.id,
            "status": execution.status.value,
            "deliverables": [unstructure(a) for a in report.artifacts],
            "metrics": {
                "stages_completed": execution.stages_done,
                "tokens_used": execution.usage.tokens,
                "estimated_cost": str(execution.cost.total_usd),
            },
        }
        path = f"/api/worker-sessions/{execution.id}/complete"
        # Settlement is idempotent: a report that arrived but whose answer was lost is
        # harmless to send again.
        await self.retry.call(lambda: self.kam.post(path, body), sleep=self.sleep)


Handler = Callable[[Request, dict[str, Any]], Awaitable[Any]]


def _signed(
    verifier: SignatureVerifier, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            body = await read_body(request, MAX_BODY_BYTES)
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            verifier.verify(request.method, path, request.headers, body)
            data = loads(body) if body.strip() else {}
            if not isinstance(data, dict):
                raise BadInputError("the JSON body must be an object")
            result = await handler(request, data)
        except AIFactoryError as exc:
            log_error(request, exc, exc.status)
            return error_response(exc)
        return Response(dumps(unstructure(result)), media_type="application/json")

    return endpoint


def _with_lifespan(app: Starlette, factory: EmbeddedFactory, *closers: Any) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with factory:
            yield
        for closer in closers:
            await closer.aclose()

    app.router.lifespan_context = lifespan
    return app


def kam_app(
    factory: EmbeddedFactory, verifier: SignatureVerifier, orchestrator: ServiceClient
) -> Starlette:
    """The account side as a service: the client-facing API of `factory_app`, executions
    run by the orchestrator service, and its completion reports settled here."""
    factory.requests.remote_control = RemoteControl(orchestrator)

    async def complete(request: Request, body: dict[str, Any]) -> Any:
        execution = await factory.store.get_execution(request.path_params["execution_id"])
        if not execution.status.is_final:
            raise BadInputError("the execution has not finished")
        artifacts = tuple(structure(a, Artifact) for a in body.get("deliverables", []))
        await factory.settlement.execution_finished(ExecutionReport(execution, artifacts))
        return {"success": True}

    app = factory_app(factory)
    app.router.routes.append(
        Route(
            "/api/worker-sessions/{execution_id}/complete",
            _signed(verifier, complete),
            methods=["POST"],
        )
    )
    return _with_lifespan(app, factory, orchestrator)


def orchestrator_app(
    factory: EmbeddedFactory, verifier: SignatureVerifier, kam: ServiceClient
) -> Starlette:
    """The orchestrator as a service: runs executions recorded in the shared state when the
    KAM service (or another signed caller) asks, and reports each finished one back."""
    factory.orchestrator.sink = HttpSink(kam)
    orchestrator = factory.orchestrator

    async def launch(request: Request, body: dict[str, Any]) -> Any:
        await orchestrator.launch(request.path_params["execution_id"])
        return {"success": True}

    async def cancel(request: Request, body: dict[str, Any]) -> Any:
        return await orchestrator.cancel(request.path_params["execution_id"])

    async def changed(request: Request, body: dict[str, Any]) -> Any:
        after, wait_s = body.get("after", 0), body.get("wait_s", 0)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise BadInputError("after is a non-negative integer")
        if isinstance(wait_s, bool) or not isinstance(wait_s, int | float) or wait_s < 0:
            raise BadInputError("wait_s is a non-negative number of seconds")
        control = LocalControl(orchestrator)
        await control.changed(request.path_params["execution_id"], after, min(wait_s, 25.0))
        return {"success": True}

    async def workers(request: Request, body: dict[str, Any]) -> Any:
        return await orchestrator.registry.status()

    async def execute(request: Request, body: dict[str, Any]) -> Any:
        template = structure(body.get("template"), Template)
        context = body.get("context") or {}
        if not isinstance(context, dict):
            raise BadInputError("context must be an object")
        execution = await orchestrator.create(
            template,
            context.get("parameters") or {},
            context={k: v for k, v in context.items() if k != "parameters"},
            resources=body.get("resources") or {},
        )
        await orchestrator.launch(execution.id)
        return {"success": True, "execution_id": execution.id}

    async def health(request: Request) -> Response:
        return Response(
            dumps({"status": "ok", "service": "orchestrator"}), media_type="application/json"
        )

    app = Starlette(
        routes=[
            Route("/api/pipelines/execute", _signed(verifier, execute), methods=["POST"]),
            Route(
                "/api/pipelines/executions/{execution_id}/launch",
                _signed(verifier, launch),
                methods=["POST"],
            ),
            Route(
                "/api/pipelines/executions/{execution_id}/cancel",
                _signed(verifier, cancel),
                methods=["POST"],
            ),
            Route(
                "/api/pipelines/executions/{execution_id}/changed",
                _signed(verifier, changed),
                methods=["POST"],
            ),
            Route("/api/pipelines/workers", _signed(verifier, workers), methods=["POST"]),
            Route("/health", health),
            *health_routes("orchestrator", factory.store, [factory.blobs]),
        ],
        middleware=[Middleware(RequestIds)],
    )
    trace_requests(app, factory.tracer, "orchestrator")
    if isinstance(factory.telemetry, PrometheusTelemetry):
        expose_metrics(app, factory.telemetry, factory.config.metrics_token, "orchestrator")
    return _with_lifespan(app, factory, kam)
