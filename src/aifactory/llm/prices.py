"""`PriceTable`: what a model's tokens cost, in US dollars, with `Decimal` arithmetic only.

Prices are per one million tokens, prompt and completion priced separately, keyed by the
model name exactly as it is configured (no prefix matching: `gpt-4o` and `gpt-4o-mini` are
different models with different prices).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

import attrs

from .base import TokenUsage

__all__ = ["DEFAULT_MODEL_PRICES", "ModelPrice", "PriceTable"]

_MILLION = Decimal(1_000_000)


def _to_price(value: Decimal | int | str | float) -> Decimal:
    """A finite, non-negative `Decimal` price.

    Floats go through their shortest `repr`, so `0.15` is exactly `Decimal("0.15")` rather
    than the binary approximation `Decimal(0.15)` would give.
    """
    if isinstance(value, bool):
        raise TypeError("a price must be a number, not a bool")
    try:
        price = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not a price: {value!r}") from exc
    if not price.is_finite() or price < 0:
        raise ValueError(f"a price must be finite and not negative, got {value!r}")
    return price


@attrs.frozen
class ModelPrice:
    """USD per one million prompt tokens and per one million completion tokens.

    Accepts `Decimal`, `int`, `str` or `float` (converted exactly through its `repr`).

    Raises `ValueError` for a negative, infinite or unparseable price and `TypeError` for
    a bool.
    """

    prompt_per_million: Decimal = attrs.field(converter=_to_price)
    completion_per_million: Decimal = attrs.field(converter=_to_price)

    def cost(self, usage: TokenUsage) -> Decimal:
        """The exact USD cost of `usage`: prompt and completion tokens priced separately."""
        prompt = usage.prompt_tokens * self.prompt_per_million / _MILLION
        completion = usage.completion_tokens * self.completion_per_million / _MILLION
        return prompt + completion


DEFAULT_MODEL_PRICES: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "gpt-4o-mini": ModelPrice("0.15", "0.60"),
        "gpt-4o": ModelPrice("2.50", "10.00"),
        "gpt-4.1": ModelPrice("2.00", "8.00"),
        "gpt-4.1-mini": ModelPrice("0.40", "1.60"),
        "gpt-4.1-nano": ModelPrice("0.10", "0.40"),
    }
)
"""OpenAI's list prices (USD per 1M tokens, standard tier, uncached input) at the time of
writing. Prices change: override them with `PriceTable.with_prices` or by building a
`PriceTable` of your own."""


def _frozen_prices(prices: Mapping[str, ModelPrice]) -> Mapping[str, ModelPrice]:
    for name, price in prices.items():
        if not isinstance(price, ModelPrice):
            raise TypeError(f"price for {name!r} must be a ModelPrice, got {type(price).__name__}")
    return MappingProxyType(dict(prices))


@attrs.frozen
class PriceTable:
    """Per-model token prices that turn a reply's `TokenUsage` into US dollars.

    `PriceTable()` holds `DEFAULT_MODEL_PRICES`; `PriceTable({})` knows no model. A model
    that is not in the table costs `Decimal(0)` — deliberately without a warning, since
    self-hosted models (vLLM, Ollama, llama.cpp) are usually free to call. Use `knows` to
    tell "free" from "unpriced".

    Raises `TypeError` when a value of `models` is not a `ModelPrice`.
    """

    # A read-only mapping cannot be hashed; equal tables still hash alike without it.
    models: Mapping[str, ModelPrice] = attrs.field(
        default=DEFAULT_MODEL_PRICES, converter=_frozen_prices, hash=False
    )

    def with_prices(self, prices: Mapping[str, ModelPrice]) -> PriceTable:
        """A new table with `prices` added, replacing the price of any model already listed.

        Raises `TypeError` when a value is not a `ModelPrice`.
        """
        return PriceTable({**self.models, **prices})

    def knows(self, model: str) -> bool:
        """Whether `model` has a price in this table."""
        return model in self.models

    def price(self, model: str) -> ModelPrice | None:
        """The price of `model`, or `None` when the table does not list it."""
        return self.models.get(model)

    def cost(self, model: str, usage: TokenUsage) -> Decimal:
        """The exact USD cost of `usage` on `model`; `Decimal(0)` for a model not in the table."""
        price = self.models.get(model)
        return Decimal(0) if price is None else price.cost(usage)
