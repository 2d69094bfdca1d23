"""`PriceTable` and `ModelPrice`: exact Decimal prices per million tokens."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aifactory.llm import DEFAULT_MODEL_PRICES, ModelPrice, PriceTable, TokenUsage


def test_defaults_list_common_openai_models() -> None:
    table = PriceTable()

    assert table.price("gpt-4o-mini") == ModelPrice(Decimal("0.15"), Decimal("0.60"))
    assert table.price("gpt-4o") == ModelPrice(Decimal("2.50"), Decimal("10.00"))
    assert table.price("gpt-4.1-mini") == ModelPrice(Decimal("0.40"), Decimal("1.60"))
    assert dict(table.models) == dict(DEFAULT_MODEL_PRICES)


def test_prompt_and_completion_are_priced_separately() -> None:
    cost = PriceTable().cost("gpt-4o", TokenUsage(prompt_tokens=1000, completion_tokens=100))

    assert cost == Decimal("0.0035")  # 1000 * 2.50 / 1e6 + 100 * 10.00 / 1e6


def test_cost_is_exact_for_awkward_numbers() -> None:
    table = PriceTable({"m": ModelPrice("0.333", "1.777")})

    cost = table.cost("m", TokenUsage(3, 7))

    assert cost == Decimal("0.000013438")
    assert isinstance(cost, Decimal)


def test_an_unknown_model_costs_zero() -> None:
    table = PriceTable()

    assert not table.knows("llama3.1:8b")
    assert table.price("llama3.1:8b") is None
    assert table.cost("llama3.1:8b", TokenUsage(10_000, 10_000)) == Decimal(0)


def test_with_prices_overrides_and_adds_without_changing_the_original() -> None:
    base = PriceTable()

    custom = base.with_prices({"gpt-4o-mini": ModelPrice(1, 2), "local": ModelPrice(0, 0)})

    assert custom.price("gpt-4o-mini") == ModelPrice(1, 2)
    assert custom.knows("local")
    assert custom.price("gpt-4o") == base.price("gpt-4o")
    assert base.price("gpt-4o-mini") == ModelPrice("0.15", "0.60")
    assert custom.cost("local", TokenUsage(5, 5)) == Decimal(0)


def test_an_empty_table_knows_nothing() -> None:
    assert PriceTable({}).cost("gpt-4o", TokenUsage(1, 1)) == Decimal(0)


def test_floats_convert_through_their_repr() -> None:
    assert ModelPrice(0.15, 0.6) == ModelPrice(Decimal("0.15"), Decimal("0.6"))
    assert ModelPrice(0.1, 0.2).prompt_per_million == Decimal("0.1")


@pytest.mark.parametrize("bad", ["-1", "NaN", "Infinity", "cheap"])
def test_bad_prices_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="price"):
        ModelPrice(bad, "0")


def test_a_bool_is_not_a_price() -> None:
    with pytest.raises(TypeError):
        ModelPrice(True, 0)


def test_the_table_is_read_only_and_a_value() -> None:
    table = PriceTable()

    with pytest.raises(TypeError):
        table.models["gpt-4o"] = ModelPrice(0, 0)  # type: ignore[index]
    assert table == PriceTable()
    assert hash(table) == hash(PriceTable())
    assert table != PriceTable({})


def test_values_must_be_model_prices() -> None:
    with pytest.raises(TypeError, match="ModelPrice"):
        PriceTable({"m": (1, 2)})  # type: ignore[dict-item]
