"""`OpenAIProvider`: the `LLM` protocol on the official `openai` SDK's async client.

`base_url` points it at any OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenRouter).
The SDK's own retries are off; this module retries rate limits (429), server errors (5xx)
and connection failures as a `RetryPolicy` says (honouring `Retry-After`), and translates
every SDK error at the boundary:

```
openai error                         → aifactory error
400 BadRequest, 422 Unprocessable    → BadInputError
401 Authentication                   → AuthenticationError
403 PermissionDenied                 → PermissionDeniedError
other 4xx                            → WorkerError
429, 5xx, connection (retries spent) → WorkerError
reply outside the schema, twice      → WorkerError
```

The API key never appears in a repr, a log line or a message or detail of an error raised
here; if a server echoes it back, it is redacted (keys under 8 characters are taken for
placeholders, like Ollama's customary `ollama`, and left alone).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

import anyio
import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from .._exceptions import (
    AIFactoryError,
    AuthenticationError,
    BadInputError,
    PermissionDeniedError,
    WorkerError,
)
from .._retry import RetryPolicy
from ._structured import RejectedReply, parse_reply, reask, schema_validator
from .base import LLMReply, Message, TokenUsage
from .metering import ModelCall, billed, completion_cap, count
from .prices import PriceTable

if TYPE_CHECKING:
    import httpx
    import httpx2

__all__ = ["DEFAULT_OPENAI_BASE_URL", "MODEL_RETRY", "OpenAIProvider"]

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
_REDACTED = "[redacted]"
# Keys shorter than this are placeholders ("ollama", "x"); redacting them would garble text.
_MIN_SECRET_LENGTH = 8

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def _is_transient(exc: BaseException) -> bool:
    """Whether trying again may help: rate limits, server errors and connection failures."""
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def _retry_after_s(exc: BaseException | None) -> float | None:
    """The server's `Retry-After` (or `retry-after-ms`) in seconds, if it sent a number."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) * scale
        except ValueError:
            continue  # an HTTP date: rare for APIs, and the backoff is a fine fallback
    return None


def _message_param(message: Message) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}


def _usage(response: ChatCompletion) -> TokenUsage:
    if response.usage is None:  # some compatible servers omit it
        return TokenUsage()
    return TokenUsage(response.usage.prompt_tokens, response.usage.completion_tokens)


#: How model calls wait between tries: about 0.5, 1, 2, 4, then 8 s, each ±25 %.
MODEL_RETRY = RetryPolicy(initial_interval_s=0.5, maximum_interval_s=8.0, jitter=0.25)


class OpenAIProvider:
    """An `LLM` served by the OpenAI API or any OpenAI-compatible server.

    - `model`: the model name sent with every request, and the key into `prices`.
    - `api_key`: sent as a bearer token; servers that need none accept any placeholder.
    - `base_url`: e.g. `http://127.0.0.1:11434/v1` for Ollama; `None` means OpenAI.
    - `timeout_s`: per HTTP request. `max_retries`: retries after the first attempt, for
      429, 5xx and connection errors only, waiting as `retry` says (its intervals and
      jitter; `MODEL_RETRY` by default), and at least what a server's `Retry-After` asks,
      up to `max_retry_after_s`; with `sleep` (`anyio.sleep` unless a test injects a
      recorder).
    - `prices`: turns usage into `LLMReply.cost_usd`; `PriceTable()` when not given.
    - `http_client`: an `httpx.AsyncClient` (or `httpx2.AsyncClient`) to send through; the
      caller keeps owning it and closes it. Without one the provider owns its own:
      close it with `aclose()` or `async with`.

    The SDK still reads `OPENAI_ORG_ID` and `OPENAI_PROJECT_ID` from the environment, as
    headers for OpenAI itself; the key and base URL are always the ones given here.

    Raises `BadInputError` for an empty model or key or a negative retry count.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = 60,
        max_retries: int = 3,
        prices: PriceTable | None = None,
        http_client: httpx.AsyncClient | httpx2.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        max_retry_after_s: float = 60.0,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not model:
            raise BadInputError("an LLM needs a model name")
        if not api_key:
            raise BadInputError(
                "an LLM needs an API key; servers that need none accept any placeholder"
            )
        if max_retries < 0:
            raise BadInputError(
                "max_retries must not be negative", details={"max_retries": max_retries}
            )
        self._model = model
        self._api_key = api_key
        self._base_url = base_url or DEFAULT_OPENAI_BASE_URL
        self._max_retries = max_retries
        self._prices = prices if prices is not None else PriceTable()
        self._retry = retry if retry is not None else MODEL_RETRY
        self._max_retry_after_s = max_retry_after_s
        self._sleep: Sleep = sleep if sleep is not None else anyio.sleep
        self._rng = rng
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self._base_url,
            timeout=timeout_s,
            max_retries=0,  # retried here, where only transient errors qualify
            # The SDK accepts a legacy `httpx.AsyncClient` at run time but types `httpx2` only.
            http_client=cast("httpx2.AsyncClient | None", http_client),
        )
        self._owns_client = http_client is None

    @property
    def model(self) -> str:
        """The model's name, as sent to the server."""
        return self._model

    @property
    def base_url(self) -> str:
        """The server's API root, e.g. `https://api.openai.com/v1`."""
        return self._base_url

    @property
    def prices(self) -> PriceTable:
        """The price table this provider charges replies by."""
        return self._prices

    def __repr__(self) -> str:
        return f"OpenAIProvider(model={self._model!r}, base_url={self._base_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP client the provider made itself; a given `http_client` stays open."""
        if self._owns_client:
            await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "reply",
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        """Ask the model; with `schema`, get JSON back that satisfies it (JSON Schema 2020-12).

        The schema is sent as a strict structured-output `response_format` (OpenAI's strict
        mode wants `additionalProperties: false` and every property required). A reply that
        is not JSON or fails the schema is re-asked once, quoting the reply and the error.
        `usage` and `cost_usd` add up both calls.

        Raises `BadInputError` for an invalid schema or schema name, or when the server
        refuses the request (400, 422); `AuthenticationError` (401); `PermissionDeniedError`
        (403); `WorkerError` for other refusals, when retries of 429, 5xx or connection
        errors run out, and when the re-asked reply still fails the schema.
        """
        validator = None if schema is None else schema_validator(schema, schema_name)
        conversation = [_message_param(m) for m in messages]
        response_format: ResponseFormatJSONSchema | None = None
        if schema is not None:
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": dict(schema), "strict": True},
            }
        usage = TokenUsage()
        served, calls = self._model, 0
        try:
            cap = self._cap(max_tokens, served, usage, conversation)
            response = await self._create(conversation, response_format, temperature, cap)
            served, usage = response.model or served, usage + _usage(response)
            calls += 1
            text = self._text(response)
            data: Any = None
            if validator is not None:
                try:
                    data = parse_reply(text, validator)
                except RejectedReply as first:
                    conversation += [
                        {"role": "assistant", "content": text},
                        {"role": "user", "content": reask(first, schema_name)},
                    ]
                    cap = self._cap(max_tokens, served, usage, conversation)
                    response = await self._create(conversation, response_format, temperature, cap)
                    served, usage = response.model or served, usage + _usage(response)
                    calls += 1
                    text = self._text(response)
                    try:
                        data = parse_reply(text, validator)
                    except RejectedReply as second:
                        raise WorkerError(
                            f"{self._model} answered outside the schema {schema_name!r} "
                            f"twice: {self._redact(str(second))}",
                            details={
                                "model": self._model,
                                "schema_name": schema_name,
                                "error": self._redact(str(second)),
                                "first_error": self._redact(str(first)),
                            },
                        ) from second
        except AIFactoryError as exc:
            # Replies that came back were billed, usable or not: the error says so, for
            # whoever counts the cost (`llm.metering`).
            if usage.total_tokens:
                purpose = schema_name if schema is not None else "text"
                exc.details.update(billed(served, usage, self._cost(served, usage), purpose, calls))
            raise
        except BaseException:
            # Cut short (cancelled, timed out) after a reply came back: billed all the same,
            # and nothing else will say so.
            if usage.total_tokens:
                purpose = schema_name if schema is not None else "text"
                cost = self._cost(served, usage)
                count(ModelCall(served, usage, cost, purpose, "cut short", calls))
            raise
        return LLMReply(
            text=text,
            model=served,
            usage=usage,
            cost_usd=self._cost(served, usage),
            data=data,
            calls=calls,
        )

    def _text(self, response: ChatCompletion) -> str:
        if not response.choices:
            raise WorkerError(f"{self._model} returned no choices", details={"model": self._model})
        message = response.choices[0].message
        if message.content is None:
            refusal = self._redact(message.refusal or "")
            raise WorkerError(
                f"{self._model} returned no content"
                + (f"; it refused: {refusal}" if refusal else ""),
                details={"model": self._model, "refusal": refusal or None},
            )
        return message.content

    def _cap(
        self,
        max_tokens: int | None,
        served: str,
        usage: TokenUsage,
        conversation: list[ChatCompletionMessageParam],
    ) -> int | None:
        """`max_tokens`, lowered to what the work's budget leaves (`metering.completion_cap`;
        `usage`: this call's replies so far). Raises `QuotaExceededError` when nothing is
        left."""
        # About four characters a token, with each message's few tokens of framing.
        prompt = sum(4 + len(str(m.get("content") or "")) // 4 for m in conversation)
        price = self._prices.price(self._model) or self._prices.price(served)
        cap = completion_cap(self._cost(served, usage), price, prompt)
        if cap is None:
            return max_tokens
        return cap if max_tokens is None else min(cap, max_tokens)

    def _cost(self, served_model: str, usage: TokenUsage) -> Decimal:
        # Price by the configured name; a server may answer with a dated snapshot's name.
        if self._prices.knows(self._model) or not served_model:
            return self._prices.cost(self._model, usage)
        return self._prices.cost(served_model, usage)

    async def _create(
        self,
        conversation: list[ChatCompletionMessageParam],
        response_format: ResponseFormatJSONSchema | None,
        temperature: float | None,
        max_tokens: int | None,
    ) -> ChatCompletion:
        """One chat completion, retried on transient errors; SDK errors translated."""
        attempts = 0

        async def attempt() -> ChatCompletion:
            nonlocal attempts
            attempts += 1
            return await self._client.chat.completions.create(
                model=self._model,
                messages=conversation,
                response_format=openai.omit if response_format is None else response_format,
                temperature=openai.omit if temperature is None else temperature,
                max_tokens=openai.omit if max_tokens is None else max_tokens,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_is_transient),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except openai.OpenAIError as exc:
            raise self._translate(exc, attempts) from exc

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        wait = self._retry.delay_s(state.attempt_number, self._rng)
        asked = _retry_after_s(failure)
        if asked is not None and asked > 0:
            # A server asking for longer than we wait at most is retried sooner (and most
            # likely refuses again, which the retry count then ends).
            wait = max(wait, min(asked, self._max_retry_after_s))
        return wait

    def _log_retry(self, state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "LLM call to %s failed (%s); retry %d of %d in %.2fs",
            self._model,
            self._describe(failure),
            state.attempt_number,
            self._max_retries,
            wait,
        )

    def _describe(self, exc: BaseException | None) -> str:
        if isinstance(exc, openai.APIStatusError):
            return f"HTTP {exc.status_code}"
        if isinstance(exc, openai.APITimeoutError):
            return "timed out"
        if isinstance(exc, openai.APIConnectionError):
            return "could not connect"
        return type(exc).__name__

    def _translate(self, exc: openai.OpenAIError, attempts: int) -> AIFactoryError:
        details: dict[str, Any] = {
            "model": self._model,
            "base_url": self._base_url,
            "attempts": attempts,
        }
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            body = exc.body if isinstance(exc.body, Mapping) else {}
            reason = self._redact(str(body.get("message") or exc.message))
            details.update(
                status=status,
                error_type=None if exc.type is None else self._redact(exc.type),
                error_code=None if exc.code is None else self._redact(exc.code),
            )
            message = f"{self._base_url} answered {status} for {self._model}: {reason}"
            if status in (400, 422):
                return BadInputError(message, details=details)
            if status == 401:
                return AuthenticationError(message, details=details)
            if status == 403:
                return PermissionDeniedError(message, details=details)
            if _is_transient(exc):
                message += f" (gave up after {attempts} attempts)"
            return WorkerError(message, details=details)
        reason = self._describe(exc) if isinstance(exc, openai.APIConnectionError) else str(exc)
        return WorkerError(
            f"{self._model} at {self._base_url}: {self._redact(reason)}"
            f" (gave up after {attempts} attempts)",
            details=details,
        )

    def _redact(self, text: str) -> str:
        if len(self._api_key) < _MIN_SECRET_LENGTH:
            return text
        return text.replace(self._api_key, _REDACTED)
