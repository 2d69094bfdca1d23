"""`ScriptedLLM`: an `LLM` that answers from a script, for worker unit tests.

Integration tests use the real `OpenAIProvider` against a local OpenAI-compatible server;
this double only spares unit tests the HTTP round trip. It records every call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from aifactory.llm import LLMReply, Message, TokenUsage

DEFAULT_USAGE = TokenUsage(100, 50)
Answer = str | dict[str, Any] | list[Any] | Exception
Script = Callable[[Sequence[Message], Mapping[str, Any] | None], Answer]


@attrs.define
class Call:
    messages: list[Message]
    schema: Mapping[str, Any] | None


class ScriptedLLM:
    """Answers with the next scripted answer (or a function of the request)."""

    def __init__(
        self,
        answers: Sequence[Answer] | Script,
        model: str = "scripted-1",
        usage: TokenUsage = DEFAULT_USAGE,
        cost_usd: Decimal = Decimal("0.001"),
    ) -> None:
        self._answers = answers if callable(answers) else list(answers)
        self._model = model
        self._usage = usage
        self._cost = cost_usd
        self.calls: list[Call] = []

    @property
    def model(self) -> str:
        return self._model

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "reply",
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        self.calls.append(Call(list(messages), schema))
        if callable(self._answers):
            answer = self._answers(messages, schema)
        else:
            if not self._answers:
                raise AssertionError("ScriptedLLM ran out of answers")
            answer = self._answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        text = answer if isinstance(answer, str) else json.dumps(answer)
        data = json.loads(text) if schema is not None else None
        return LLMReply(text, self._model, self._usage, self._cost, data)
