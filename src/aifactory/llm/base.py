"""The `LLM` protocol: chat messages (and an optional JSON schema) in, text or checked JSON out.

Workers depend on this protocol only, never on a provider. Fetched content is untrusted: put
it in `user` messages as data, never in `system` instructions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal, Protocol

import attrs

__all__ = ["LLM", "LLMReply", "Message", "TokenUsage"]

Role = Literal["system", "user", "assistant"]


@attrs.frozen
class Message:
    """One chat message."""

    role: Role
    content: str


@attrs.frozen
class TokenUsage:
    """Tokens a reply consumed, as the provider counted them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@attrs.frozen
class LLMReply:
    """A model's reply: its text, the parsed JSON when a schema was given, usage and cost.

    `usage` and `cost_usd` cover every call made for this reply (including a re-ask after a
    reply that failed its schema), each counted once; `calls` says how many there were.
    """

    text: str
    model: str
    usage: TokenUsage
    cost_usd: Decimal = Decimal(0)
    data: Any = None
    calls: int = 1


class LLM(Protocol):
    """A chat model."""

    @property
    def model(self) -> str:
        """The model's name."""
        ...

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "reply",
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        """Ask the model. With `schema`, the reply's `data` is JSON that satisfies it.

        Raises `WorkerError` (or a subclass) when the model cannot be reached or keeps
        answering outside the schema, and `BadInputError` for requests the provider refuses.
        """
        ...
