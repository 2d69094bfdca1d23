"""`OpenAIServer`: a real OpenAI-compatible HTTP server on 127.0.0.1 that answers from a script.

Tests point the real `openai` client (through `OpenAIProvider`) at `server.base_url`:

```python
with OpenAIServer(["plain text", {"title": "JSON content"}, rate_limited()]) as server:
    provider = OpenAIProvider("gpt-4o-mini", api_key="k", base_url=server.base_url)
    ...
    assert server.completions[0]["messages"][0]["role"] == "system"
```

or take the `openai_server` fixture (a session-wide server, reset for each test; import it
and `openai_server_session` into a `conftest.py`) and `add(...)` replies.

It serves `POST /v1/chat/completions` and `GET /v1/models`. Each chat completion takes
the next scripted reply:

- a `str`: the assistant's content, as is (malformed JSON included);
- a `dict` or `list`: JSON-encoded into the content;
- a `ScriptedCompletion`: content plus chosen usage, finish reason or model;
- a `ScriptedError`: an HTTP error with an OpenAI-style body (`rate_limited()`,
  `server_error()`, `bad_request()`, `unauthorized()`, `forbidden()`);
- a callable taking the request's JSON body and returning any of the above.

`add(..., schema="research_plan")` scripts replies for the requests that ask for that JSON
schema (`response_format.json_schema.name`, a worker's `schema_name`) only: they are taken
before the main script, so a test can aim a reply at one stage while others run beside it.

When the script runs out, `default` answers (if given); otherwise the server answers 400
"no scripted reply left", which the provider does not retry, so the test fails loudly.
Every request is recorded in `requests`; the chat completion bodies also in `completions`.
With `api_key` set, a request without that bearer token gets 401 and uses no reply.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

import attrs
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = [
    "OpenAIServer",
    "RecordedRequest",
    "Reply",
    "ScriptedCompletion",
    "ScriptedError",
    "bad_request",
    "forbidden",
    "openai_server",
    "openai_server_session",
    "rate_limited",
    "server_error",
    "unauthorized",
]


@attrs.frozen
class ScriptedCompletion:
    """A successful completion; `content` is JSON-encoded unless it is a `str` (or `None`,
    as when the model refuses and says why in `refusal`).

    Usage defaults to an estimate from the text lengths (about four characters a token). A
    request's `max_tokens` is honoured as a real server does: a longer completion is cut to
    it (its content too, at four characters a token) and ends with `finish_reason`
    `"length"`.
    `delay_s` holds the answer back that long (without blocking other requests), to make a
    client time out.
    """

    content: str | dict[str, Any] | list[Any] | None
    refusal: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    model: str | None = None
    delay_s: float = 0.0


@attrs.frozen
class ScriptedError:
    """An HTTP error answered with an OpenAI-style `{"error": {...}}` body."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "error": {"message": self.message, "type": self.type, "param": None, "code": self.code}
        }


Answer = str | dict[str, Any] | list[Any] | ScriptedCompletion | ScriptedError
Reply = Answer | Callable[[Any], Any]


def _answer(reply: Reply, body: Any) -> Answer:
    """The answer a reply gives to `body`, calling scripted callables."""
    if callable(reply):
        return _answer(reply(body), body)
    return reply


def rate_limited(retry_after: str | None = "0") -> ScriptedError:
    """429, with `Retry-After` (seconds) unless `retry_after` is `None`."""
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return ScriptedError(
        429,
        "Rate limit reached for requests. Please try again shortly.",
        type="requests",
        code="rate_limit_exceeded",
        headers=headers,
    )


def server_error(status: int = 500) -> ScriptedError:
    """A 5xx server error."""
    return ScriptedError(
        status, "The server had an error while processing your request.", type="server_error"
    )


def held(asked: threading.Event, release: threading.Event) -> Callable[[Any], Any]:
    """A reply that sets `asked` and waits for `release` (30 s at most), then answers a 500,
    which is not billed: a call in flight for as long as a test needs one."""

    def hold(body: Any) -> Any:
        asked.set()
        release.wait(30)
        return server_error()

    return hold


def bad_request(message: str = "Invalid request.", code: str | None = None) -> ScriptedError:
    """400 invalid request."""
    return ScriptedError(400, message, code=code)


def unauthorized(message: str = "Incorrect API key provided.") -> ScriptedError:
    """401 invalid API key."""
    return ScriptedError(401, message, code="invalid_api_key")


def forbidden(message: str = "You are not allowed to use this model.") -> ScriptedError:
    """403 permission denied."""
    return ScriptedError(403, message, code="model_not_allowed")


def _schema_name(body: dict[str, Any]) -> str | None:
    """The name of the JSON schema a chat completion request asks for, if any."""
    fmt = body.get("response_format")
    spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
    name = spec.get("name") if isinstance(spec, dict) else None
    return name if isinstance(name, str) else None


@attrs.frozen
class RecordedRequest:
    """One request the server received; `body` is the parsed JSON body, if any."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


class OpenAIServer:
    """An OpenAI-compatible server on a free port of 127.0.0.1, run by uvicorn in a thread.

    Use it as a context manager (or `start()` / `stop()`); `base_url` ends in `/v1`.
    """

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Reply | None = None,
        api_key: str | None = None,
        models: Iterable[str] = ("gpt-4o-mini", "gpt-4o"),
    ) -> None:
        self._script: deque[Reply] = deque(replies)
        self._by_schema: dict[str, deque[Reply]] = {}
        self._default = default
        self._api_key = api_key
        self._models = list(models)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.requests: list[RecordedRequest] = []
        #: The usage each completion answered with (prompt, completion tokens): what the
        #: server billed.
        self.billed: list[tuple[int, int]] = []
        self._billed_schemas: list[str | None] = []  # the JSON schema asked for, per `billed`
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
            ]
        )

    # -- the script ---------------------------------------------------------------------------

    def add(self, *replies: Reply, schema: str | None = None) -> None:
        """Append replies to the script, or with `schema` to the script of the requests for
        that JSON schema name."""
        with self._lock:
            if schema is None:
                self._script.extend(replies)
            else:
                self._by_schema.setdefault(schema, deque()).extend(replies)

    def reset(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Reply | None = None,
        api_key: str | None = None,
    ) -> None:
        """Start over: a new script, default and key, and no recorded requests."""
        with self._lock:
            self._script = deque(replies)
            self._by_schema = {}
            self._default = default
            self._api_key = api_key
            self.requests = []
            self.billed = []
            self._billed_schemas = []

    @property
    def pending(self) -> int:
        """How many scripted replies have not been used yet (all scripts)."""
        with self._lock:
            return len(self._script) + sum(len(q) for q in self._by_schema.values())

    @property
    def billed_tokens(self) -> int:
        """Every token the server billed (prompt and completion), over all completions."""
        with self._lock:
            return sum(p + c for p, c in self.billed)

    def billed_for(self, schema: str) -> list[tuple[int, int]]:
        """What the server billed for the requests that asked for the JSON schema `schema`."""
        with self._lock:
            return [
                u for u, s in zip(self.billed, self._billed_schemas, strict=True) if s == schema
            ]

    @property
    def completions(self) -> list[Any]:
        """The JSON bodies of the chat completion requests received, in order."""
        with self._lock:
            return [r.body for r in self.requests if r.path == "/v1/chat/completions"]

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the server is not running")
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def base_url(self) -> str:
        """The API root to give an OpenAI client, e.g. `http://127.0.0.1:PORT/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        """Bind a free port and serve in a background thread; return once it accepts."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self._app,
            loop="asyncio",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="openai-server",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the OpenAI test server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for its thread and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the endpoints (run on the server thread) ---------------------------------------------

    async def _record(self, request: Request) -> RecordedRequest:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        recorded = RecordedRequest(request.method, request.url.path, dict(request.headers), body)
        with self._lock:
            self.requests.append(recorded)
        return recorded

    def _refusal(self, recorded: RecordedRequest) -> ScriptedError | None:
        sent_key = recorded.headers.get("authorization", "").removeprefix("Bearer ")
        if self._api_key is not None and sent_key != self._api_key:
            return unauthorized()
        if not isinstance(recorded.body, dict) or not isinstance(
            recorded.body.get("messages"), list
        ):
            return bad_request("The request body must be JSON with a 'messages' list.")
        if recorded.body.get("stream"):
            return bad_request("OpenAIServer does not stream.")
        return None

    def _next_reply(self, body: dict[str, Any]) -> Answer:
        schema = _schema_name(body)
        with self._lock:
            aimed = self._by_schema.get(schema) if schema is not None else None
            script = aimed or self._script
            reply = script.popleft() if script else self._default
        if reply is None:
            return bad_request("OpenAIServer: no scripted reply left.", code="script_exhausted")
        return _answer(reply, body)

    async def _chat_completions(self, request: Request) -> JSONResponse:
        recorded = await self._record(request)
        refusal = self._refusal(recorded)
        # In a thread: a scripted callable may block (a test holding a reply back), and the
        # other requests must still be answered meanwhile.
        reply = (
            refusal
            if refusal is not None
            else await asyncio.to_thread(self._next_reply, recorded.body)
        )
        if isinstance(reply, ScriptedError):
            return JSONResponse(reply.body(), status_code=reply.status, headers=reply.headers)
        if not isinstance(reply, ScriptedCompletion):
            reply = ScriptedCompletion(reply)
        if reply.delay_s > 0:
            await asyncio.sleep(reply.delay_s)
        return JSONResponse(self._completion(recorded.body, reply))

    def _completion(self, body: dict[str, Any], reply: ScriptedCompletion) -> dict[str, Any]:
        content = reply.content
        if content is not None and not isinstance(content, str):
            content = json.dumps(content)
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(4 + _tokens(str(m.get("content", ""))) for m in body["messages"])
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = _tokens(content or reply.refusal or "")
        finish_reason = reply.finish_reason
        limit = body.get("max_tokens")
        if isinstance(limit, int) and completion_tokens > limit:
            # As a real server does: the completion stops at `max_tokens`, cut short.
            completion_tokens, finish_reason = limit, "length"
            content = None if content is None else content[: limit * 4]
        with self._lock:
            self.billed.append((prompt_tokens, completion_tokens))
            self._billed_schemas.append(_schema_name(body))
        return {
            "id": f"chatcmpl-local{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or body.get("model", "unknown"),
            "system_fingerprint": "fp_openai_server",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": reply.refusal,
                    },
                    "finish_reason": finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    async def _list_models(self, request: Request) -> JSONResponse:
        await self._record(request)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "openai-server"}
            for name in self._models
        ]
        return JSONResponse({"object": "list", "data": data})


@pytest.fixture(scope="session")
def openai_server_session() -> Iterator[OpenAIServer]:
    """One running `OpenAIServer` for the whole session (starting one costs ~0.2 s)."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def openai_server(openai_server_session: OpenAIServer) -> Iterator[OpenAIServer]:
    """The session's `OpenAIServer`, reset to an empty script and no recorded requests.

    Import both fixtures into a `conftest.py`:
    `from tests.openai_server import openai_server, openai_server_session`.
    """
    openai_server_session.reset()
    yield openai_server_session
    openai_server_session.reset()
