"""The boundary's parsing, hammered: whatever JSON value, query text or amount arrives, it is
either accepted sound or refused with `BadInputError`, never another error."""

from __future__ import annotations

import contextlib
import json
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifactory import BadInputError
from aifactory.api.arguments import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_TEXT_CHARS,
    Param,
    bind,
    from_query,
    sound,
)
from aifactory.kam._fields import MAX_MONEY_USD, money
from aifactory.protocol.codec import dumps, loads

# Text with everything Unicode can hold, lone surrogates included (`st.text()` leaves them
# out by default; JSON can escape them).
any_text = st.text(st.characters(codec=None, categories=None), max_size=20)
integers = st.integers() | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30])
floats = st.floats(allow_nan=True, allow_infinity=True)
json_values = st.recursive(
    st.none() | st.booleans() | integers | floats | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)
PARAMS = (
    Param("name", str),
    Param("limit", int, 100),
    Param("wait_s", float, 0.0),
    Param("budget", Decimal | float | int | str, None),
    Param("parameters", dict[str, Any] | None, None),
    Param("flag", bool | None, None),
)


def _is_sound(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_TEXT_CHARS and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return (
            depth < MAX_DEPTH
            and len(value) <= MAX_ITEMS
            and all(_is_sound(v, depth + 1) for v in value)
        )
    assert isinstance(value, dict)
    return (
        depth < MAX_DEPTH
        and len(value) <= MAX_ITEMS
        and all(_is_sound(k, depth + 1) and _is_sound(v, depth + 1) for k, v in value.items())
    )


@given(json_values)
def test_sound_accepts_exactly_the_sound_values(value: Any) -> None:
    if not _is_sound(value):
        with pytest.raises(BadInputError) as refused:
            sound(value, "field")
        assert refused.value.details["field"] == "field"
        return
    sound(value, "field")
    # What is accepted can be stored: encoded as JSON and UTF-8 without error.
    dumps(value).decode("utf-8")


@given(st.dictionaries(st.sampled_from([p.name for p in PARAMS]) | any_text, json_values))
def test_bind_binds_or_refuses_with_bad_input_only(given_values: dict[str, Any]) -> None:
    try:
        bound = bind(PARAMS, given_values)
    except BadInputError:
        return
    assert bound == given_values
    for value in bound.values():
        assert _is_sound(value)


@given(any_text | st.from_regex(r"-?[0-9]{1,6000}", fullmatch=True))
def test_query_text_converts_or_is_refused(text: str) -> None:
    for param in PARAMS:
        try:
            value = from_query(param, text)
            bind(PARAMS, {param.name: value} | ({} if param.name == "name" else {"name": "n"}))
        except BadInputError:
            continue


@given(st.binary(max_size=200) | any_text.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_loads_parses_or_refuses_with_bad_input_only(raw: bytes) -> None:
    with contextlib.suppress(BadInputError):
        loads(raw)


@given(st.integers(min_value=4301, max_value=6000))
def test_integers_too_long_to_parse_are_bad_input(digits: int) -> None:
    with pytest.raises(BadInputError, match="malformed JSON"):
        loads(b'{"n": ' + b"7" * digits + b"}")


amounts = (
    st.decimals(allow_nan=True, allow_infinity=True)
    | floats
    | integers
    | st.text(max_size=30)
    | st.sampled_from(["1e999999999", "-0", "0.01", "0.001", "1000000000", "1000000000.01"])
)


@given(amounts)
def test_money_is_a_bounded_amount_in_cents_or_bad_input(value: Any) -> None:
    try:
        amount = money(value, "monthly_budget_usd")
    except BadInputError as exc:
        refused = exc
    else:
        refused = None
    if refused is not None:
        assert refused.details["field"] == "monthly_budget_usd"
        return
    assert amount.is_finite()
    assert 0 <= amount <= MAX_MONEY_USD
    assert amount == amount.quantize(Decimal("0.01"))
    # An accepted amount survives the JSON codec (as text) unchanged.
    assert Decimal(json.loads(dumps(str(amount)))) == amount


@pytest.mark.parametrize(
    "value", ["1e999999999", "NaN", "-Infinity", -1, "0.001", Decimal("1e400"), 10**40, True]
)
def test_money_refuses_the_budgets_that_broke_execute(value: Any) -> None:
    with pytest.raises(BadInputError):
        money(value, "monthly_budget_usd")
