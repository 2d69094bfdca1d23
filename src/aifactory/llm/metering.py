"""Counting every model call, including the ones whose reply was of no use.

Whoever does a piece of work that may call a model (a stage attempt in the worker host, a
template recommendation) opens a `Meter` for it with `metering()`; a `MeteredLLM` records each
call made inside that block in it, as the provider billed it: a reply (whatever the caller
then makes of it), and an error that says what the failed call was billed
(`details["billed"]`, as the OpenAI provider's errors do for replies that were not usable).
The meter travels in a context variable, so the calls of tasks the work spawns count too,
and the worker code between the two knows nothing of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

import attrs

from .._exceptions import AIFactoryError, QuotaExceededError
from .._tracing import NO_TRACING, Tracer
from ..models.execution import Cost, Usage
from .base import LLM, LLMReply, Message, TokenUsage
from .prices import ModelPrice

__all__ = [
    "Meter",
    "MeteredLLM",
    "ModelCall",
    "billed",
    "completion_cap",
    "count",
    "metering",
    "spent",
    "spent_of",
]


@attrs.frozen
class ModelCall:
    """One model call as the provider billed it. `outcome`: `"ok"` (a reply came back),
    `"unusable"` (billed, but the provider could not make a usable reply of it) or `"cut
    short"` (billed replies came back, then the work was cancelled or timed out)."""

    model: str
    usage: TokenUsage
    cost_usd: Decimal
    purpose: str
    outcome: str = "ok"
    #: The provider's billed requests this call took (2 after a re-ask).
    requests: int = 1


@attrs.define
class Meter:
    """The model calls made for one piece of work, in the order they ended.

    Meters nest: a call counted in a meter opened inside another's block counts in the
    `outer` one too (the orchestrator watches an in-process stage attempt as the worker host
    meters it, so that the calls of an attempt cut short still cost).
    """

    calls: list[ModelCall] = attrs.field(factory=list)
    outer: Meter | None = attrs.field(default=None, repr=False)
    #: The most the work may spend on models (USD), if bounded: see `completion_cap`.
    limit_usd: Decimal | None = None

    def left(self) -> Decimal | None:
        """What the work may still spend: the least any bounded meter around it leaves."""
        least: Decimal | None = None
        meter: Meter | None = self
        while meter is not None:
            if meter.limit_usd is not None:
                room = meter.limit_usd - meter.cost_usd
                least = room if least is None else min(least, room)
            meter = meter.outer
        return least

    def spent(self) -> tuple[Usage, Cost]:
        """What the work spent on models, as a stage run counts it: tokens, billed
        requests (`model_calls`) and their cost."""
        tokens = self.usage
        usage = Usage(tokens.prompt_tokens, tokens.completion_tokens, model_calls=self.requests)
        return usage, Cost(llm_usd=self.cost_usd)

    def record(self, call: ModelCall) -> None:
        """Count `call`, here and in the meters around this one."""
        meter: Meter | None = self
        while meter is not None:
            meter.calls.append(call)
            meter = meter.outer

    @property
    def requests(self) -> int:
        """How many billed requests the calls took (re-asks included)."""
        return sum(c.requests for c in self.calls)

    @property
    def usage(self) -> TokenUsage:
        """The tokens of every call."""
        return sum((c.usage for c in self.calls), TokenUsage())

    @property
    def cost_usd(self) -> Decimal:
        """The cost of every call."""
        return sum((c.cost_usd for c in self.calls), Decimal(0))


_current: ContextVar[Meter | None] = ContextVar("aifactory_meter", default=None)


@contextlib.contextmanager
def metering(meter: Meter | None = None) -> Iterator[Meter]:
    """Count the model calls made inside the block (and in tasks it starts) in `meter` (a
    new one if not given), and in the meter around the block, if any."""
    around = _current.get()
    meter = Meter() if meter is None else meter
    if meter.outer is None and around is not None and around is not meter:
        meter.outer = around
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)


_MILLION = Decimal(1_000_000)


def completion_cap(
    pending_usd: Decimal, price: ModelPrice | None, prompt_tokens: int
) -> int | None:
    """The most completion tokens the next model call of the current work may ask for, so
    that the call cannot spend more than the work has left: `None` when the work is not
    bounded (or the model's price is unknown).

    `pending_usd` is what the caller has spent in this call already (a first reply before
    its re-ask) and not yet reported; `prompt_tokens` estimates the next prompt, whose
    cost is set aside first. Since a call then costs at most what was left plus what its
    prompt cost beyond the estimate, the work overruns its bound by less than one call's
    prompt, and makes no call once nothing is left.

    Raises `QuotaExceededError` when what is left does not pay for one completion token.
    """
    meter = _current.get()
    left = None if meter is None else meter.left()
    if left is None or price is None or price.completion_per_million <= 0:
        return None
    room = left - pending_usd - prompt_tokens * price.prompt_per_million / _MILLION
    tokens = int(room * _MILLION / price.completion_per_million) if room > 0 else 0
    if tokens < 1:
        available = max(left - pending_usd, Decimal(0))
        raise QuotaExceededError(
            f"the budget left for this work ({available} USD) does not pay for another model call",
            details={"reason": "budget", "available_usd": str(available)},
        )
    return tokens


def count(call: ModelCall) -> None:
    """Count `call` in the meter of the work it was made for, if any: for a provider whose
    call was cut short (cancelled, timed out) after replies it was billed for came back,
    since neither a reply nor an error will carry them to a `MeteredLLM`."""
    meter = _current.get()
    if meter is not None:
        meter.record(call)


def billed(
    model: str, usage: TokenUsage, cost_usd: Decimal, purpose: str, requests: int = 1
) -> dict[str, dict[str, Any]]:
    """The `details` entry an error carries for calls billed but of no use (see module):
    `requests` billed requests, `usage` their tokens together."""
    return {
        "billed": {
            "model": model,
            "purpose": purpose,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": str(cost_usd),
            "requests": requests,
        }
    }


def spent(meter: Meter) -> dict[str, dict[str, Any]]:
    """The `details` entry a failed stage attempt's error carries for the model calls it
    made (`{"spent": {prompt_tokens, completion_tokens, cost_usd, calls}}`), or nothing."""
    if not meter.calls:
        return {}
    usage = meter.usage
    return {
        "spent": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": str(meter.cost_usd),
            "calls": meter.requests,
        }
    }


def spent_of(error: AIFactoryError) -> tuple[TokenUsage, Decimal, int] | None:
    """What `error` says its failed attempt spent on models (see `spent`), if anything: the
    tokens, their cost and how many calls."""
    found = error.details.get("spent")
    if not isinstance(found, Mapping):
        return None
    try:
        usage = TokenUsage(int(found["prompt_tokens"]), int(found["completion_tokens"]))
        return usage, Decimal(str(found["cost_usd"])), int(found.get("calls", 1))
    except (KeyError, ValueError, TypeError, ArithmeticError):
        return None


def _billed_call(error: AIFactoryError) -> ModelCall | None:
    found = error.details.get("billed")
    if not isinstance(found, Mapping):
        return None
    try:
        usage = TokenUsage(int(found["prompt_tokens"]), int(found["completion_tokens"]))
        return ModelCall(
            str(found["model"]),
            usage,
            Decimal(str(found["cost_usd"])),
            str(found.get("purpose", "")),
            "unusable",
            int(found.get("requests", 1)),
        )
    except (KeyError, ValueError, TypeError, ArithmeticError):
        return None


class MeteredLLM:
    """An `LLM` that records each call in the meter of the work it is made for (if any),
    each a `chat {model}` span of `tracer` (with OpenTelemetry's `gen_ai.*` attributes)."""

    def __init__(self, llm: LLM, tracer: Tracer = NO_TRACING) -> None:
        self.llm: LLM = llm.llm if isinstance(llm, MeteredLLM) else llm  # never twice
        self.tracer = tracer

    @property
    def model(self) -> str:
        """The wrapped model's name."""
        return self.llm.model

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "reply",
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        """The wrapped model's `complete`, counted. Raises what it raises."""
        purpose = schema_name if schema is not None else "text"
        model = self.llm.model
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "aifactory.purpose": purpose,
        }
        with self.tracer.span(f"chat {model}", attributes, kind="client") as span:
            try:
                reply = await self.llm.complete(
                    messages,
                    schema=schema,
                    schema_name=schema_name,
                    temperature=temperature,
                    max_tokens=max_tokens,
                )
            except AIFactoryError as exc:
                call = _billed_call(exc)
                if call is not None:
                    self._record(call, span)
                raise
            call = ModelCall(
                reply.model, reply.usage, reply.cost_usd, purpose, requests=reply.calls
            )
            self._record(call, span)
            return reply

    def _record(self, call: ModelCall, span: Any) -> None:
        """Count `call` in the current meter, and say on the span what it was billed."""
        meter = _current.get()
        if meter is not None:
            meter.record(call)
        if span is not None:
            span.set_attributes(
                {
                    "gen_ai.response.model": call.model,
                    "gen_ai.usage.input_tokens": call.usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": call.usage.completion_tokens,
                    "aifactory.cost_usd": str(call.cost_usd),
                    "aifactory.model_requests": call.requests,
                }
            )

    async def aclose(self) -> None:
        """Close the wrapped model's HTTP client, if it has one."""
        close = getattr(self.llm, "aclose", None)
        if close is not None:
            await close()

    def __repr__(self) -> str:
        return f"MeteredLLM({self.llm!r})"
