"""A worker service: one or more `WorkerHost`s behind the worker protocol, as an ASGI app.

Routes (the documented AI Factory wire format):

| route                  | body in                     | answer                                  |
|------------------------|-----------------------------|-----------------------------------------|
| `POST /api/handshake`  | `HandshakeRequest` (JSON)   | `HandshakeReply` (JSON)                 |
| `POST /api/process`    | `ProcessRequest` (JSON)     | NDJSON stream, see below                |
| `POST /api/acknowledge`| `AcknowledgeByDigest` (JSON)| `AcknowledgeReply` (JSON)               |
| `GET /health`          |                             | `{"healthy", "workers": [WorkerHealth]}`|
| `GET /health?worker=N` |                             | `WorkerHealth` of worker `N`            |
| `GET /health/live`, `/health/ready` |                | liveness, readiness (`server.health`)   |

**Which worker.** A service may host several workers. A handshake goes to the worker its
message names; process and acknowledge go to the worker that accepted their handshake (the
service remembers the newest 10,000), or to the only worker hosted. `?worker=NAME` on any
route names one explicitly (and must agree with the message). Unknown names and handshakes
are 404.

**Authentication.** Every `/api/*` request must be signed (`auth.signing`: `X-Worker-ID`,
`X-Signature`); the signature is checked over the raw bytes before anything is parsed, and
failures are 401. `/health` is public: it tells only names, free
slots, capabilities and versions, which the orchestrator's registry polls.

**Process answers plain JSON, or streams heartbeats.** A stage that finishes without
reporting progress is answered `200 application/json` with its `ProcessReply`, like the
other routes. From the worker's first progress report on, the answer is
`200 application/x-ndjson`, one JSON object per line:
`{"progress": {"percent": 30.0, "message": "..."}}` for each progress report, then exactly
one final line, `{"result": <ProcessReply>}` or `{"error": {"code", "message", "details"}}`
(an error after the stream started can only be told this way). An error before the first
progress line is an ordinary JSON error response with its status. If the caller
disconnects, the stage is cancelled at the worker.

**Acknowledge names the output by its sha256** (`AcknowledgeByDigest`): the service remembers
the output it reported for each handshake (the newest 10,000, within 64 MiB of inline
outputs) and hands the host the `AcknowledgeRequest` with that output; a digest that differs
is 409, a handshake whose output is not remembered 404.

**Messages** leave out fields equal to their defaults; fields a message does not have are
400. Process and acknowledge answers leave out what their request said (`handshake_id`,
`attempt`): the caller puts them back.

**Errors** are `{"error": {"code", "message", "details"}}` with the status of the
`AIFactoryError` class; malformed JSON or a message that does not match its type is 400, an
unknown route 404, a wrong method 405, a body over `max_body_bytes` (1 MiB: data moves by
reference, so messages are small) 413. Anything unexpected is a 500 with a generic message;
the traceback goes to the `aifactory.server.worker_app` logger, never to the caller.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote_plus

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .._exceptions import AIFactoryError, BadInputError, ConflictError, NotFoundError
from .._tracing import NO_TRACING, Tracer
from ..auth.signing import SignatureVerifier
from ..models.storage_ref import StorageRef
from ..orchestrator.telemetry import PrometheusTelemetry
from ..protocol.codec import dumps, from_json, unstructure
from ..protocol.messages import (
    AcknowledgeByDigest,
    AcknowledgeReply,
    HandshakeRequest,
    ProcessReply,
    ProcessRequest,
)
from ..storage import BlobStore
from ..workers.host import WorkerHost
from ._request_ids import RequestIds
from .health import health_routes
from .metrics import expose_metrics
from .tracing import trace_requests

__all__ = ["MAX_BODY_BYTES", "NDJSON", "worker_app"]

MAX_BODY_BYTES = 1024 * 1024
NDJSON = "application/x-ndjson"

_log = logging.getLogger(__name__)
T = TypeVar("T")
_NDJSON_HEAD = [(b"content-type", NDJSON.encode()), (b"cache-control", b"no-store")]
# Outputs remembered for acknowledges by digest: as many as a `WorkerHost` remembers stages,
# and no more than this many bytes of inline outputs.
_REPORTED = 10_000
_REPORTED_INLINE_BYTES = 64 * 1024 * 1024


class _BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class _Disconnected(Exception):
    """The caller went away before its request was read: there is nobody to answer."""


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json")


def _error_body(code: str, message: str, details: dict[str, Any] | None = None) -> Any:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _error_payload(exc: Exception) -> tuple[int, Any]:
    """The status and JSON error body for any exception; 5xx only for what is not the
    caller's fault."""
    if isinstance(exc, AIFactoryError):
        return exc.status, exc.to_dict()
    if isinstance(exc, _BodyTooLarge):
        message = f"request bodies are limited to {exc.limit} bytes"
        return 413, _error_body("payload_too_large", message, {"max_bytes": exc.limit})
    # Never leak a traceback: the operator's log has it, the caller gets a plain error.
    _log.error("unexpected error in the worker service", exc_info=exc)
    return 500, _error_body("internal_error", "internal error")


def _error_response(exc: Exception) -> Response:
    status, body = _error_payload(exc)
    return _json(body, status)


def _path_with_query(scope: Scope) -> str:
    # The path exactly as the client sent (and signed) it, prefix of a mount included.
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string", b"")
    text = raw.decode("latin-1")
    return f"{text}?{query.decode('latin-1')}" if query else text


def _worker_asked(query: bytes) -> str | None:
    # `?worker=NAME`, read without building a whole QueryParams on every call.
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name == b"worker":
            return unquote_plus(value.decode("latin-1"))
    return None


class _Reported:
    """The outputs this service reported, by handshake id, newest last (see `_REPORTED`)."""

    def __init__(self, max_outputs: int, max_inline_bytes: int) -> None:
        self._outputs: OrderedDict[str, StorageRef] = OrderedDict()
        self._inline_bytes = 0
        self._max_outputs = max_outputs
        self._max_inline_bytes = max_inline_bytes

    def add(self, reply: ProcessReply) -> None:
        self._outputs[reply.handshake_id] = reply.output_ref
        self._inline_bytes += len(reply.output_ref.data or b"")
        while self._outputs and (
            len(self._outputs) > self._max_outputs or self._inline_bytes > self._max_inline_bytes
        ):
            _, old = self._outputs.popitem(last=False)
            self._inline_bytes -= len(old.data or b"")

    def get(self, handshake_id: str) -> StorageRef | None:
        return self._outputs.get(handshake_id)


class _WorkerService:
    def __init__(
        self,
        hosts: Sequence[WorkerHost],
        verifier: SignatureVerifier,
        max_body_bytes: int,
        tracer: Tracer,
    ) -> None:
        self.tracer = tracer
        self.hosts: dict[str, WorkerHost] = {}
        for host in hosts:
            if host.name in self.hosts:
                raise BadInputError(
                    f"worker {host.name} is hosted twice", details={"worker": host.name}
                )
            self.hosts[host.name] = host
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes
        self.reported = _Reported(_REPORTED, _REPORTED_INLINE_BYTES)
        # Which worker accepted each handshake (the newest `_REPORTED`): process and
        # acknowledge find their worker by the handshake they continue.
        self.accepted_by: OrderedDict[str, str] = OrderedDict()

    async def read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        length = headers.get("content-length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                raise BadInputError("malformed Content-Length header")
            if int(length) > self.max_body_bytes:
                raise _BodyTooLarge(self.max_body_bytes)
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk: bytes = message.get("body", b"")
            body += chunk
            if len(body) > self.max_body_bytes:
                raise _BodyTooLarge(self.max_body_bytes)
            if not message.get("more_body", False):
                return body

    async def signed_message(self, scope: Scope, receive: Receive, cls: type[T]) -> T:
        """Read, authenticate, then parse; nothing unauthenticated reaches the parser."""
        # ASGI servers give header names in lower case.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = await self.read_body(headers, receive)
        self.verifier.verify(scope["method"], _path_with_query(scope), headers, body)
        # Strict about keys: a misspelt field would otherwise pass as its default.
        return from_json(body, cls, forbid_extra_keys=True)

    def host(
        self, scope: Scope, named: str | None = None, handshake_id: str | None = None
    ) -> WorkerHost:
        """The host a request is for (see the module docstring): the one `?worker=` or the
        message names, or the one that accepted handshake `handshake_id`.

        Raises `BadInputError` for an ambiguous or contradictory choice, `NotFoundError`
        for a worker not hosted here or a handshake no worker here accepted.
        """
        asked = _worker_asked(scope.get("query_string", b""))
        if asked is not None and named is not None and asked != named:
            raise BadInputError(
                "?worker= and the message name different workers",
                details={"query": asked, "message": named},
            )
        name = asked or named
        if name is None and handshake_id is not None:
            name = self.accepted_by.get(handshake_id)
        if name is None:
            if len(self.hosts) == 1:
                return next(iter(self.hosts.values()))
            if handshake_id is not None:
                raise NotFoundError(
                    f"no accepted handshake {handshake_id!r}",
                    details={"handshake_id": handshake_id},
                )
            raise BadInputError(
                "this service hosts several workers: name one with ?worker=NAME",
                details={"workers": sorted(self.hosts)},
            )
        host = self.hosts.get(name)
        if host is None:
            raise NotFoundError(
                f"no worker {name!r} in this service", details={"workers": sorted(self.hosts)}
            )
        return host

    async def handshake(self, scope: Scope, receive: Receive) -> Any:
        message = await self.signed_message(scope, receive, HandshakeRequest)
        host = self.host(scope, message.worker)
        with self.tracer.span(f"worker handshake {host.name}", _attributes(message)):
            reply = await host.handshake(message)
        if reply.accepted:
            self.accepted_by[reply.handshake_id] = host.name
            while len(self.accepted_by) > _REPORTED:
                self.accepted_by.popitem(last=False)
        return reply

    async def acknowledge(self, scope: Scope, receive: Receive) -> Any:
        message = await self.signed_message(scope, receive, AcknowledgeByDigest)
        host = self.host(scope, handshake_id=message.handshake_id)
        output = None
        if message.output_sha256 is not None:
            output = self.reported.get(message.handshake_id)
            if output is None:
                raise NotFoundError(
                    f"no output reported for handshake {message.handshake_id!r}",
                    details={"handshake_id": message.handshake_id},
                )
            if output.sha256 != message.output_sha256:
                raise ConflictError(
                    "acknowledged output differs from the processed output",
                    details={"attempt": message.attempt},
                )
        with self.tracer.span(f"worker acknowledge {host.name}", _attributes(message)):
            reply = await host.acknowledge(message.with_output(output))
        return _without_echo(reply)

    async def health(self, request: Request) -> Response:
        if "worker" in request.query_params:
            return _json(unstructure(self.host(request.scope).health()))
        reports = [host.health() for host in self.hosts.values()]
        return _json({"healthy": all(r.healthy for r in reports), "workers": unstructure(reports)})


class _Exchange:
    """A protocol route that answers one JSON reply, as a raw ASGI app (no request and
    response objects to build on the hot path); every error is its JSON error response."""

    def __init__(self, call: Callable[[Scope, Receive], Awaitable[Any]]) -> None:
        self.call = call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = _json(unstructure(await self.call(scope, receive), omit_defaults=True))
        except _Disconnected:
            return
        except Exception as exc:
            response = _error_response(exc)
        await response(scope, receive, send)


def _guarded(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return _error_response(exc)

    endpoint.__name__ = handler.__name__
    return endpoint


def _attributes(message: HandshakeRequest | ProcessRequest | AcknowledgeByDigest) -> Any:
    """A protocol step's span attributes: the execution, stage and attempt it is for."""
    return {
        "aifactory.execution_id": message.execution_id,
        "aifactory.stage_id": message.stage_id,
        "aifactory.attempt": message.attempt,
    }


def _without_echo(reply: ProcessReply | AcknowledgeReply) -> dict[str, Any]:
    """A process or acknowledge answer without what its request said (the handshake id and
    attempt): the caller knows them (`HttpWorkerTransport` puts them back)."""
    body: dict[str, Any] = unstructure(reply, omit_defaults=True)
    body.pop("handshake_id", None)
    body.pop("attempt", None)
    return body


class _ProcessEndpoint:
    """`POST /api/process` as a raw ASGI app: the answer is started lazily, so a stage that
    reports no progress is answered plain JSON, an error before the first heartbeat keeps
    its own status, and later ones end the stream."""

    def __init__(self, service: _WorkerService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            message = await self.service.signed_message(scope, receive, ProcessRequest)
            host = self.service.host(scope, handshake_id=message.handshake_id)
        except _Disconnected:
            return
        except Exception as exc:
            await _error_response(exc)(scope, receive, send)
            return
        streaming = answered = False

        async def line(data: Any, *, last: bool = False) -> None:
            nonlocal streaming
            if not streaming:
                streaming = True
                await send({"type": "http.response.start", "status": 200, "headers": _NDJSON_HEAD})
            body = dumps(data) + b"\n"
            await send({"type": "http.response.body", "body": body, "more_body": not last})

        async def progress(percent: float, text: str) -> None:
            await line({"progress": {"percent": percent, "message": text}})

        async with anyio.create_task_group() as tg:

            async def stop_when_disconnected() -> None:
                # Once the answer is complete, ASGI reports a disconnect too: that one ends
                # this watcher without cancelling anything.
                while (await receive())["type"] != "http.disconnect":
                    pass
                if not answered:
                    tg.cancel_scope.cancel()  # the caller gave up: stop the stage

            tg.start_soon(stop_when_disconnected)
            span = self.service.tracer.span(f"worker process {host.name}", _attributes(message))
            try:
                with span:
                    reply = await host.process(message, progress)
            except Exception as exc:
                answered = True
                if streaming:
                    await line(_error_payload(exc)[1], last=True)
                else:
                    await _error_response(exc)(scope, receive, send)
            else:
                answered = True
                self.service.reported.add(reply)
                if streaming:
                    await line({"result": _without_echo(reply)}, last=True)
                else:
                    await _json(_without_echo(reply))(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    message = str(exc.detail) if isinstance(exc, HTTPException) else "internal error"
    response = _json(_error_body(code, message), status)
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)
    return response


def worker_app(
    hosts: Sequence[WorkerHost],
    verifier: SignatureVerifier,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    metrics_token: str | None = None,
    storage: BlobStore | None = None,
    tracer: Tracer = NO_TRACING,
) -> Starlette:
    """An ASGI app serving `hosts` through the worker protocol (see the module docstring).

    Its HTTP requests are counted, and served at `/metrics` to callers that send
    `metrics_token` as a bearer token (`server.metrics`; without a token, not served).
    `/health/live` and `/health/ready` (`server.health`) check `storage`, the hosts' blob
    store. With a `tracer` that traces, each request and protocol step is a span
    (`server.tracing`), continuing the caller's trace.

    `verifier` holds the keys of the callers allowed (the orchestrator's, other workers').
    The hosts keep their own state (accepted handshakes, stage states): serve one app per
    set of hosts, in one process. Raises `BadInputError` if two hosts serve the same worker.
    """
    service = _WorkerService(hosts, verifier, max_body_bytes, tracer)
    routes = [
        Route("/api/handshake", _Exchange(service.handshake), methods=["POST"]),
        Route("/api/process", _ProcessEndpoint(service), methods=["POST"]),
        Route("/api/acknowledge", _Exchange(service.acknowledge), methods=["POST"]),
        Route("/health", _guarded(service.health), methods=["GET"]),
        *health_routes("worker", None, [storage] if storage is not None else []),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error},
        middleware=[Middleware(RequestIds)],
    )
    trace_requests(app, tracer, "worker")
    return expose_metrics(app, PrometheusTelemetry(), metrics_token, "worker")
