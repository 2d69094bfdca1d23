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

from .._exceptions import AIFactoryError
from .base import LLM, LLMReply, Message, TokenUsage

__all__ = [
    "Meter",
    "MeteredLLM",
    "ModelCall",
    "billed",
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
    """An `LLM` that records each call in the meter of the work it is made for (if any)."""

    def __init__(self, llm: LLM) -> None:
        self.llm: LLM = llm.llm if isinstance(llm, MeteredLLM) else llm  # never twice

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
        try:
            reply = await self.llm.complete(
                messages,
                schema=schema,
                schema_name=schema_name,
                temperature=temperature,
                max_tokens=max_tokens,
            )
        except AIFactoryError as exc:
            meter = _current.get()
            call = _billed_call(exc)
            if meter is not None and call is not None:
                meter.record(call)
            raise
        meter = _current.get()
        if meter is not None:
            meter.record(
                ModelCall(reply.model, reply.usage, reply.cost_usd, purpose, requests=reply.calls)
            )
        return reply

    async def aclose(self) -> None:
        """Close the wrapped model's HTTP client, if it has one."""
        close = getattr(self.llm, "aclose", None)
        if close is not None:
            await close()

    def __repr__(self) -> str:
        return f"MeteredLLM({self.llm!r})"
