"""`HttpWorkerTransport`: the orchestrator reaches a worker service over HTTP.

It speaks the wire format of `aifactory.server.worker_app` (`POST /api/handshake`,
`/api/process`, `/api/acknowledge`, `GET /health`, each with `?worker=NAME`), signs every
request with the caller's `WorkerKey`, and raises on this side the same exception classes
the worker raised on its side.

Requests go straight to an httpx transport (by default a keep-alive `httpx.AsyncHTTPTransport`
pool): the worker protocol needs none of `httpx.AsyncClient`'s cookies, redirects, auth flows
or default headers, and skipping them saves about a sixth of each call. `process` accepts both
forms of the worker's answer: plain JSON when the stage finished before reporting progress,
or an NDJSON stream of heartbeats ending with the result.

Failures of the connection itself become `TransportError` (chained with `from`). A request
that could not even be delivered (connection refused, no connection in time) is tried again
for the idempotent calls:

- `health` only reads;
- `acknowledge` is idempotent by the handshake state machine: a repeated acknowledge of the
  same attempt and output answers `duplicate=True` and changes nothing;
- `handshake` is harmless to repeat: a handshake reserves no slot (slots are taken by
  `process`), and a repeat of an attempt the worker already saw is refused as stale without
  touching the state, so at worst one attempt is wasted and the orchestrator offers the next.

`process` is never repeated here: running a stage twice is the orchestrator's decision (its
retry policy starts a new attempt with a new handshake). Timeouts in the middle of a request
are never retried either: the request may have been delivered.

`traffic` counts the bytes this transport sent and received: request and status lines,
headers and bodies as HTTP/1.1 puts them on the wire (the chunk-size lines of a streamed
`process` answer excepted), so a benchmark can show how little the orchestrator moves per
stage when the data travels by reference.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncGenerator, Mapping
from typing import Any, TypeVar

import anyio
import attrs
import httpx

from .._clock import Clock, SystemClock
from .._exceptions import (
    ERROR_BY_STATUS,
    AIFactoryError,
    BadInputError,
    StageTimeoutError,
    TransportError,
)
from .._tracing import inject
from ..auth.signing import WorkerKey, sign
from ..protocol.codec import structure, to_signed_json
from ..protocol.messages import (
    AcknowledgeByDigest,
    AcknowledgeReply,
    AcknowledgeRequest,
    HandshakeReply,
    HandshakeRequest,
    ProcessReply,
    ProcessRequest,
    WorkerHealth,
)
from ..workers.base import ProgressCallback
from ._http import error_for, resend_policy, tls_context, transport_error

__all__ = ["HttpWorkerTransport", "Traffic"]

T = TypeVar("T")

# When an error answer's body does not say, its status does; 504 from a worker service is a
# stage that ran out of time.
_BY_STATUS = {**ERROR_BY_STATUS, 504: StageTimeoutError}
NDJSON = "application/x-ndjson"
_MAX_LINE_BYTES = 1024 * 1024  # a worker service sends small lines; refuse to buffer more


@attrs.frozen
class Traffic:
    """Requests made and bytes moved by one transport (subtract two to get a delta)."""

    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def __sub__(self, other: Traffic) -> Traffic:
        return Traffic(
            self.requests - other.requests,
            self.bytes_sent - other.bytes_sent,
            self.bytes_received - other.bytes_received,
        )


def _headers_size(headers: httpx.Headers) -> int:
    # "name: value\r\n" each, then the blank line that ends the head.
    return sum(len(k) + len(v) + 4 for k, v in headers.raw) + 2


def _error(response: httpx.Response, body: Any) -> AIFactoryError:
    """The exception a worker service's error answer stands for (the same class as on its
    side), with the service's request id."""
    return error_for(response, body, peer="worker service", by_status=_BY_STATUS)


class HttpWorkerTransport:
    """A `WorkerTransport` for the worker `worker` of the service at `base_url`.

    `key` is the caller's own signing key (e.g. the orchestrator's), which the service's
    `SignatureVerifier` must know. Requests go through `http_transport`: one keep-alive pool
    (`httpx.AsyncHTTPTransport()`) may serve many endpoints, or `httpx.ASGITransport(app)`
    calls a worker app in process; close a transport you pass yourself. Without one, the
    endpoint makes its own pool and `aclose` closes it. `timeout_s` bounds connecting and each
    read and write; `process_read_timeout_s` bounds the wait between two heartbeat lines of
    `process` (default: none, the orchestrator watches heartbeats and start-to-close itself).
    `connect_retries` is how many more times an undelivered idempotent request is sent.
    An `https://` service's certificate must chain to a CA of `ca_bundle` (a PEM file),
    else to the system's (for the pool this endpoint makes; one you pass has its own TLS).
    Raises `BadInputError` for a `base_url` that is not an http(s) URL and an unusable
    `ca_bundle`.
    """

    def __init__(
        self,
        base_url: str,
        worker: str,
        key: WorkerKey,
        *,
        http_transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 30.0,
        process_read_timeout_s: float | None = None,
        connect_retries: int = 2,
        retry_pause_s: float = 0.05,
        clock: Clock | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._worker = worker
        self._key = key
        # Parsed once, with their exact request targets (what the signature covers).
        try:
            # The protocol calls need no `?worker=`: a handshake names its worker, process
            # and acknowledge continue a handshake. Health asks about this worker.
            self._urls = {
                path: httpx.URL(self._base_url + path)
                for path in ("/api/handshake", "/api/process", "/api/acknowledge")
            }
            self._urls["/health"] = httpx.URL(self._base_url + "/health", params={"worker": worker})
        except httpx.InvalidURL as exc:
            raise BadInputError(f"not a URL: {base_url!r}") from exc
        if any(url.scheme not in ("http", "https") for url in self._urls.values()):
            raise BadInputError(f"a worker service URL is http(s): {base_url!r}")
        self._targets = {path: url.raw_path.decode("ascii") for path, url in self._urls.items()}
        self._owns_http = http_transport is None
        self._http = http_transport or httpx.AsyncHTTPTransport(verify=tls_context(ca_bundle))
        self._timeout = {"timeout": httpx.Timeout(timeout_s).as_dict()}
        self._process_timeout = {
            "timeout": httpx.Timeout(timeout_s, read=process_read_timeout_s).as_dict()
        }
        self._retries = connect_retries
        self._pause = retry_pause_s
        self._clock: Clock = clock or SystemClock()
        self._requests = self._sent = self._received = 0
        self._closed = False

    @property
    def worker(self) -> str:
        """The name of the worker behind this endpoint."""
        return self._worker

    @property
    def local(self) -> bool:
        """Never: every call is a round trip to the service."""
        return False

    @property
    def base_url(self) -> str:
        """The service's root URL."""
        return self._base_url

    @property
    def traffic(self) -> Traffic:
        """What this transport has sent and received so far."""
        return Traffic(self._requests, self._sent, self._received)

    def __repr__(self) -> str:
        return f"HttpWorkerTransport({self._base_url!r}, worker={self._worker!r})"

    # -- the protocol --------------------------------------------------------------------------

    async def handshake(self, request: HandshakeRequest) -> HandshakeReply:
        """Offer a stage attempt. Raises what the worker raised, or `TransportError`."""
        return await self._call("POST", "/api/handshake", to_signed_json(request), HandshakeReply)

    async def acknowledge(self, request: AcknowledgeRequest) -> AcknowledgeReply:
        """Commit (or give up) an attempt. Raises what the worker raised, or `TransportError`.

        The output goes by its sha256 (`AcknowledgeByDigest`): the service knows which
        output it reported for the handshake.
        """
        body = to_signed_json(AcknowledgeByDigest.of(request))
        echo = {"handshake_id": request.handshake_id}
        return await self._call("POST", "/api/acknowledge", body, AcknowledgeReply, echo)

    async def health(self) -> WorkerHealth:
        """The worker's health. Raises `NotFoundError` if the service does not host the
        worker, `TransportError` if it cannot be reached."""
        return await self._call("GET", "/health", b"", WorkerHealth)

    async def process(
        self, request: ProcessRequest, on_progress: ProgressCallback | None = None
    ) -> ProcessReply:
        """Run the accepted attempt; each heartbeat line is passed to `on_progress`.

        Raises what the worker raised (`NotFoundError`, `StaleAttemptError`,
        `StageFailedError`, ...), or `TransportError` if the connection failed or the
        stream ended without a result. Never retried here.
        """
        outgoing = self._request("POST", "/api/process", to_signed_json(request))
        echo = {"handshake_id": request.handshake_id, "attempt": request.attempt}
        try:
            response = await self._http.handle_async_request(outgoing)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        try:
            self._count_response_head(response)
            if response.status_code != 200:
                body = await self._read(response)
                raise _error(response, _json_or_none(body))
            if not response.headers.get("content-type", "").startswith(NDJSON):
                # Finished before any heartbeat: the answer is the result, as plain JSON.
                body = await self._read(response)
                return _parse(_json_or_none(body), ProcessReply, "/api/process", echo)
            final: tuple[str, Any] | None = None
            async with contextlib.aclosing(self._lines(response)) as lines:
                async for line in lines:
                    item = _stream_item(line)
                    if final is not None:
                        continue  # nothing follows the last line; read on to the end
                    if item[0] == "progress":
                        if on_progress is not None:
                            message = str(item[1].get("message", ""))
                            await on_progress(_percent(item[1]), message)
                    else:
                        # Read the (empty) rest before answering, so the connection goes back
                        # to the pool cleanly instead of being dropped half-read.
                        final = item
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        finally:
            # Shielded: when the orchestrator cancels a stage (timeout, heartbeat lost), the
            # connection is still closed, which tells the worker service to stop the stage.
            with anyio.CancelScope(shield=True):
                await response.aclose()
        if final is None:
            raise TransportError("the process stream ended without a result")
        kind, value = final
        if kind == "error":
            raise _error(response, {"error": value})
        return _parse(value, ProcessReply, "/api/process", echo)

    async def aclose(self) -> None:
        """Close the endpoint (later calls raise `TransportError`), and its connection pool
        if it created it."""
        self._closed = True
        if self._owns_http:
            await self._http.aclose()

    # -- plumbing ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: bytes) -> httpx.Request:
        # Only what the worker service reads: httpx adds Host and Content-Length; there is no
        # User-Agent, Accept or Accept-Encoding (replies are small JSON, never compressed).
        if self._closed:
            raise TransportError(f"the endpoint of worker {self._worker} is closed")
        target = self._targets[path]
        headers = sign(method, target, body, self._key, now=self._clock.now().timestamp())
        inject(headers)  # the stage's trace continues in the worker service
        if body:
            headers["Content-Type"] = "application/json"
        request = httpx.Request(
            method,
            self._urls[path],
            headers=headers,
            content=body or None,
            extensions=self._process_timeout if path == "/api/process" else self._timeout,
        )
        self._requests += 1
        # "METHOD target HTTP/1.1\r\n", the head, the body.
        self._sent += len(method) + len(target) + 12 + _headers_size(request.headers) + len(body)
        return request

    def _count_response_head(self, response: httpx.Response) -> None:
        # "HTTP/1.1 200 OK\r\n", then the head.
        self._received += 15 + len(response.reason_phrase) + _headers_size(response.headers)

    async def _read(self, response: httpx.Response) -> bytes:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            self._received += len(chunk)
            if len(body) > _MAX_LINE_BYTES:
                raise TransportError("the worker service's answer is too large")
        return bytes(body)

    async def _lines(self, response: httpx.Response) -> AsyncGenerator[bytes, None]:
        pending = b""
        async for chunk in response.aiter_bytes():
            self._received += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.strip():
                    yield line
            if len(pending) > _MAX_LINE_BYTES:
                raise TransportError("a line of the process stream is too long")
        if pending.strip():
            yield pending

    async def _call(
        self,
        method: str,
        path: str,
        body: bytes,
        cls: type[T],
        echo: Mapping[str, Any] | None = None,
    ) -> T:
        async def send() -> T:
            # Signed afresh each time: a repeated nonce would be refused as a replay.
            outgoing = self._request(method, path, body)
            try:
                response = await self._http.handle_async_request(outgoing)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc) from exc
            try:
                self._count_response_head(response)
                raw = await self._read(response)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc) from exc
            finally:
                await response.aclose()
            data = _json_or_none(raw)
            if response.status_code != 200:
                raise _error(response, data)
            return _parse(data, cls, path, echo)

        return await resend_policy(self._retries, self._pause).call(send, sleep=anyio.sleep)

    def _transport_error(self, exc: httpx.HTTPError) -> TransportError:
        return transport_error(
            exc,
            f"worker {self._worker} at {self._base_url} could not be reached "
            f"({type(exc).__name__})",
            {"worker": self._worker, "url": self._base_url},
        )


def _parse(data: Any, cls: type[T], path: str, echo: Mapping[str, Any] | None = None) -> T:
    """`data` as a `cls`, with the fields of `echo` (what the request said, which the
    answer leaves out) put back; an answer that says otherwise is a `TransportError`."""
    if echo and isinstance(data, dict):
        for field, value in echo.items():
            said = data.setdefault(field, value)
            if said != value:
                raise TransportError(
                    f"{path} answered for {field} {said!r}, not {value!r}",
                    details={"field": field},
                )
    try:
        return structure(data, cls)
    except BadInputError as exc:
        # Our own message was checked by the worker; an answer that does not parse is the
        # other side answering nonsense, not bad input of ours.
        raise TransportError(f"unreadable answer from {path}: {exc.message}") from exc


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None


def _stream_item(line: bytes) -> tuple[str, Any]:
    try:
        item = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise TransportError("a line of the process stream is not JSON") from exc
    if not isinstance(item, dict) or len(item) != 1:
        raise TransportError("a line of the process stream is not a one-key object")
    [(kind, value)] = item.items()
    if kind not in ("progress", "result", "error") or (
        kind != "result" and not isinstance(value, dict)
    ):
        raise TransportError(f"unexpected line in the process stream: {kind!r}")
    return kind, value


def _percent(progress: dict[str, Any]) -> float:
    value = progress.get("percent")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TransportError("a progress line has no numeric percent")
    return float(value)
