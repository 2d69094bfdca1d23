"""validate_parameters: template parameter schemas, per tier, with every problem reported."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifactory._exceptions import BadInputError, ParameterError
from aifactory.kam.parameters import validate_parameters
from aifactory.models import ParameterSpec, StageSpec, Template, Tier

PREMIUM_UP = (Tier.PREMIUM, Tier.ENTERPRISE)

SPECS = (
    ParameterSpec("topic", "string", max_length=10, required=True),
    ParameterSpec("count", "integer", minimum=1, maximum=5, default=2),
    ParameterSpec("ratio", "number", minimum=0.0, maximum=1.0),
    ParameterSpec("flag", "boolean", default=False),
    ParameterSpec(
        "depth",
        "enum",
        choices=("overview", "detailed"),
        default="overview",
        editable_tiers=PREMIUM_UP,
    ),
    ParameterSpec("audit_mode", "boolean", default=True, visible_tiers=(Tier.ENTERPRISE,)),
    ParameterSpec("note", "string"),
)
TEMPLATE = Template(
    "params_test",
    "Parameters test",
    "",
    "test",
    tuple(Tier),
    (StageSpec("only", "test_worker"),),
    parameters=SPECS,
)


def problems(tier: Tier, given_: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(ParameterError) as info:
        validate_parameters(TEMPLATE, tier, given_)
    assert info.value.details["template"] == "params_test"
    errors = info.value.details["errors"]
    assert isinstance(errors, list)
    return errors


def problem_of(tier: Tier, given_: dict[str, Any], name: str) -> str:
    errors = problems(tier, given_)
    assert [e["parameter"] for e in errors] == [name], errors
    return errors[0]["error"]


def test_defaults_are_filled_in() -> None:
    assert validate_parameters(TEMPLATE, Tier.BASIC, {"topic": "AI"}) == {
        "topic": "AI",
        "count": 2,
        "flag": False,
        "depth": "overview",
    }


def test_defaults_of_parameters_visible_on_the_tier_only() -> None:
    result = validate_parameters(TEMPLATE, Tier.ENTERPRISE, {"topic": "AI"})
    assert result["audit_mode"] is True
    assert "audit_mode" not in validate_parameters(TEMPLATE, Tier.PREMIUM, {"topic": "AI"})


def test_given_values_replace_defaults() -> None:
    given_ = {"topic": "AI", "count": 5, "ratio": 0.25, "flag": True, "note": "n"}
    assert validate_parameters(TEMPLATE, Tier.STANDARD, given_) == {**given_, "depth": "overview"}


def test_null_means_the_default() -> None:
    result = validate_parameters(
        TEMPLATE, Tier.BASIC, {"topic": "AI", "count": None, "ratio": None}
    )
    assert result["count"] == 2
    assert "ratio" not in result


def test_the_input_is_not_modified() -> None:
    given_ = {"topic": "AI"}
    validate_parameters(TEMPLATE, Tier.BASIC, given_)
    assert given_ == {"topic": "AI"}


def test_an_unknown_parameter_is_refused() -> None:
    assert problem_of(Tier.BASIC, {"topic": "AI", "colour": "red"}, "colour") == "unknown parameter"


def test_a_parameter_not_visible_on_the_tier_is_unknown() -> None:
    error = problem_of(Tier.PREMIUM, {"topic": "AI", "audit_mode": False}, "audit_mode")
    assert error == "unknown parameter"
    assert (
        validate_parameters(TEMPLATE, Tier.ENTERPRISE, {"topic": "AI", "audit_mode": False})[
            "audit_mode"
        ]
        is False
    )


def test_a_missing_required_parameter_is_refused() -> None:
    assert problem_of(Tier.BASIC, {}, "topic") == "is required"
    assert problem_of(Tier.BASIC, {"topic": None}, "topic") == "is required"


@pytest.mark.parametrize("value", [True, False, 2.0, 2.5, "2", [2], {"n": 2}])
def test_an_integer_must_be_an_integer_and_bool_is_not_one(value: Any) -> None:
    assert problem_of(Tier.BASIC, {"topic": "AI", "count": value}, "count") == "must be an integer"


@pytest.mark.parametrize("value", [True, "0.5", math.nan, math.inf, -math.inf, [0.5]])
def test_a_number_must_be_a_finite_number(value: Any) -> None:
    error = problem_of(Tier.BASIC, {"topic": "AI", "ratio": value}, "ratio")
    assert error == "must be a finite number"


@pytest.mark.parametrize("value", [0, 1, 0.0, 0.5, 1.0])
def test_a_number_accepts_integers_and_floats_in_range(value: float) -> None:
    assert (
        validate_parameters(TEMPLATE, Tier.BASIC, {"topic": "AI", "ratio": value})["ratio"] == value
    )


@pytest.mark.parametrize("value", [1, 0, "true", "false", [True]])
def test_a_boolean_must_be_true_or_false(value: Any) -> None:
    assert problem_of(Tier.BASIC, {"topic": "AI", "flag": value}, "flag") == "must be true or false"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("count", 0, "must be at least 1"),
        ("count", -7, "must be at least 1"),
        ("count", 6, "must be at most 5"),
        ("ratio", -0.001, "must be at least 0"),
        ("ratio", 1.5, "must be at most 1"),
    ],
)
def test_numbers_out_of_range_are_refused(name: str, value: float, message: str) -> None:
    assert problem_of(Tier.BASIC, {"topic": "AI", name: value}, name) == message


@given(st.integers(min_value=-(10**6), max_value=10**6))
@settings(max_examples=100)
def test_integer_range_is_inclusive(value: int) -> None:
    if 1 <= value <= 5:
        assert (
            validate_parameters(TEMPLATE, Tier.BASIC, {"topic": "AI", "count": value})["count"]
            == value
        )
    else:
        problem_of(Tier.BASIC, {"topic": "AI", "count": value}, "count")


def test_an_enum_value_must_be_one_of_the_choices() -> None:
    error = problem_of(Tier.PREMIUM, {"topic": "AI", "depth": "extreme"}, "depth")
    assert error == "must be one of ['overview', 'detailed']"
    assert problem_of(Tier.PREMIUM, {"topic": "AI", "depth": 1}, "depth") == "must be a string"
    assert (
        validate_parameters(TEMPLATE, Tier.PREMIUM, {"topic": "AI", "depth": "detailed"})["depth"]
        == "detailed"
    )


def test_a_string_longer_than_max_length_is_refused() -> None:
    assert validate_parameters(TEMPLATE, Tier.BASIC, {"topic": "x" * 10})["topic"] == "x" * 10
    error = problem_of(Tier.BASIC, {"topic": "x" * 11}, "topic")
    assert error == "must be at most 10 characters"
    assert problem_of(Tier.BASIC, {"topic": 42}, "topic") == "must be a string"


@pytest.mark.parametrize("tier", [Tier.BASIC, Tier.STANDARD])
def test_a_value_the_tier_may_not_edit_is_refused(tier: Tier) -> None:
    error = problem_of(tier, {"topic": "AI", "depth": "detailed"}, "depth")
    assert error == f"not editable on the {tier.value} tier"


def test_restating_the_default_is_not_an_edit() -> None:
    result = validate_parameters(TEMPLATE, Tier.BASIC, {"topic": "AI", "depth": "overview"})
    assert result["depth"] == "overview"


def test_every_problem_is_listed() -> None:
    errors = problems(
        Tier.BASIC,
        {
            "count": True,
            "ratio": 7,
            "flag": "no",
            "depth": "detailed",
            "audit_mode": True,
            "colour": "red",
            "note": 3,
        },
    )
    by_name = {e["parameter"]: e["error"] for e in errors}
    assert by_name == {
        "topic": "is required",
        "count": "must be an integer",
        "ratio": "must be at most 1",
        "flag": "must be true or false",
        "depth": "not editable on the basic tier",
        "audit_mode": "unknown parameter",
        "colour": "unknown parameter",
        "note": "must be a string",
    }
    assert len(errors) == len(by_name)  # each problem once


def test_the_error_is_bad_input_and_its_message_names_each_problem() -> None:
    with pytest.raises(BadInputError) as info:
        validate_parameters(TEMPLATE, Tier.BASIC, {"colour": "red"})
    assert isinstance(info.value, ParameterError)
    assert info.value.status == 400
    assert "colour: unknown parameter" in info.value.message
    assert "topic: is required" in info.value.message


def test_a_template_without_parameters_accepts_nothing_but_nothing() -> None:
    bare = Template("bare", "Bare", "", "test", tuple(Tier), (StageSpec("s", "w"),))
    assert validate_parameters(bare, Tier.BASIC, {}) == {}
    with pytest.raises(ParameterError):
        validate_parameters(bare, Tier.BASIC, {"x": 1})


valid_values = st.fixed_dictionaries(
    {"topic": st.text(max_size=10)},
    optional={
        "count": st.integers(min_value=1, max_value=5),
        "ratio": st.floats(min_value=0.0, max_value=1.0) | st.integers(0, 1),
        "flag": st.booleans(),
        "note": st.text(max_size=30),
    },
)


@given(valid_values, st.sampled_from(Tier))
@settings(max_examples=100)
def test_valid_values_come_back_with_defaults_added(given_: dict[str, Any], tier: Tier) -> None:
    result = validate_parameters(TEMPLATE, tier, given_)
    defaults = {"count": 2, "flag": False, "depth": "overview"}
    if tier is Tier.ENTERPRISE:
        defaults["audit_mode"] = True
    assert result == {**defaults, **given_}


def test_a_huge_json_integer_for_a_number_is_a_parameter_error() -> None:
    # JSON integers have no size limit; one too big for a float must be refused, not crash.
    huge = int("1" + "0" * 400)
    error = problem_of(Tier.BASIC, {"topic": "AI", "ratio": huge}, "ratio")
    assert error in ("must be a finite number", "must be at most 1")
    assert problem_of(Tier.BASIC, {"topic": "AI", "count": huge}, "count") == "must be at most 5"
