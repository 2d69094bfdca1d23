"""An operation's arguments: which it takes, and whether the values given fit.

An operation's arguments are those of the service method that carries it out (its handler,
after the principal). Both transports bind them here, so embedded and remote refuse the same
values with the same `BadInputError`: the values in their JSON form (what travels over HTTP,
and what the in-process transport turns a call's values into first) are checked against the
annotations: JSON types exactly (a string is not a number), enums by value, `None` only where
the annotation allows it, no unknown names, nothing required missing. Query strings are
converted first (`"3"` → 3 for an int parameter, `"true"` → True for a bool).

Every value, and everything inside it, must also be sound, whatever its annotation: text is
valid Unicode (no lone surrogates, which JSON can escape as `"\ud800"` but nothing can
store or encode) of at most `MAX_TEXT_CHARS` characters; integers fit in 64 bits (what the
databases hold); floats are finite; lists and objects hold at most `MAX_ITEMS` entries and
nest at most `MAX_DEPTH` levels. Amounts of money have their own checks where they are
used (`kam`).
"""

from __future__ import annotations

import enum
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from .._exceptions import BadInputError

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_TEXT_CHARS",
    "Param",
    "bind",
    "check",
    "from_query",
    "params_of",
    "sound",
]

_REQUIRED = inspect.Parameter.empty

#: The most characters a text value may have (any field, or inside one).
MAX_TEXT_CHARS = 100_000
#: The most entries a list or object may have.
MAX_ITEMS = 1_000
#: The deepest lists and objects may nest inside an argument.
MAX_DEPTH = 32
_INT64 = range(-(2**63), 2**63)
_QUERY_INT = re.compile(r"-?[0-9]+")


@attrs.frozen
class Param:
    """One argument of an operation: its name, annotation and default (`REQUIRED` if none)."""

    name: str
    annotation: Any
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        """Whether the caller must give it."""
        return self.default is _REQUIRED


def params_of(handler: Callable[..., Any]) -> tuple[Param, ...]:
    """The arguments of a service method, without its leading `principal`."""
    hints = typing.get_type_hints(handler)
    found = []
    for name, parameter in inspect.signature(handler).parameters.items():
        if name in ("self", "principal"):
            continue
        found.append(Param(name, hints.get(name, Any), parameter.default))
    return tuple(found)


def _members(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return (annotation,)


def _fits(value: Any, annotation: Any) -> bool:
    if annotation is Any:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation) or annotation
    if isinstance(origin, type) and issubclass(origin, enum.Enum):
        return isinstance(value, str) and value in {m.value for m in origin}
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is Decimal:
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    if origin is str:
        return isinstance(value, str)
    if origin in (dict, Mapping) or origin is typing.Mapping:
        return isinstance(value, dict)
    if origin in (list, tuple):
        return isinstance(value, list)
    return False


def bind(params: tuple[Param, ...], given: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments `given` (in their JSON form), checked against `params`.

    Raises `BadInputError` for an unknown name, a missing required one, or a value of the
    wrong type, naming the field.
    """
    by_name = {p.name: p for p in params}
    for name in given:
        if name not in by_name:
            raise BadInputError(f"unknown field {name!r}", details={"field": name})
    missing = [p.name for p in params if p.required and p.name not in given]
    if missing:
        raise BadInputError(f"missing {', '.join(missing)}", details={"fields": missing})
    return {name: check(by_name[name], value) for name, value in given.items()}


def check(param: Param, value: Any) -> Any:
    """`value` if it is `sound` and fits `param`'s annotation. Raises `BadInputError` naming
    the argument."""
    sound(value, param.name)
    if any(_fits(value, member) for member in _members(param.annotation)):
        return value
    raise BadInputError(
        f"{param.name} has the wrong type",
        details={"field": param.name, "expected": _describe(param.annotation)},
    )


def from_query(param: Param, text: str) -> Any:
    """A query-string value converted to what `param` expects (then `check` it)."""
    members = [m for m in _members(param.annotation) if m is not type(None)]
    for member in members:
        if member is bool and text in ("true", "false", "1", "0"):
            return text in ("true", "1")
        if member is int and _QUERY_INT.fullmatch(text):
            if len(text.lstrip("-")) > 19:  # beyond 64 bits, and maybe beyond int()'s limit
                raise _out_of_range(param.name)
            return int(text)
        if member is float:
            try:
                return float(text)
            except ValueError:
                continue
    return text


def sound(value: Any, field: str, depth: int = 0) -> None:
    """Check that `value` (in its JSON form) and everything in it is sound: valid Unicode
    text of at most `MAX_TEXT_CHARS`, 64-bit integers, finite floats, at most `MAX_ITEMS`
    entries in a list or object, nested at most `MAX_DEPTH` deep. Raises `BadInputError`
    naming `field`."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise BadInputError(
                f"{field} is longer than {MAX_TEXT_CHARS} characters",
                details={"field": field, "max_chars": MAX_TEXT_CHARS},
            )
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise BadInputError(
                    f"{field} is not valid Unicode text", details={"field": field}
                ) from None
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if value not in _INT64:
            raise _out_of_range(field)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise BadInputError(f"{field} is not a finite number", details={"field": field})
    elif isinstance(value, list | tuple | dict):
        if depth >= MAX_DEPTH:
            raise BadInputError(
                f"{field} nests deeper than {MAX_DEPTH} levels",
                details={"field": field, "max_depth": MAX_DEPTH},
            )
        if len(value) > MAX_ITEMS:
            raise BadInputError(
                f"{field} has more than {MAX_ITEMS} entries",
                details={"field": field, "max_items": MAX_ITEMS},
            )
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise BadInputError(
                        f"{field} has a key that is not text", details={"field": field}
                    )
                sound(key, field, depth + 1)
                sound(item, field, depth + 1)
        else:
            for item in value:
                sound(item, field, depth + 1)


def _out_of_range(field: str) -> BadInputError:
    return BadInputError(
        f"{field} is out of range (integers fit in 64 bits)",
        details={"field": field, "min": -(2**63), "max": 2**63 - 1},
    )


def _describe(annotation: Any) -> str:
    return " | ".join(getattr(m, "__name__", str(m)) for m in _members(annotation))
