"""An operation's arguments: which it takes, and whether the values given fit.

An operation's arguments are those of the service method that carries it out (its handler,
after the principal). Both transports bind them here, so embedded and remote refuse the same
values with the same `BadInputError`: the values in their JSON form (what travels over HTTP,
and what the in-process transport turns a call's values into first) are checked against the
annotations: JSON types exactly (a string is not a number), enums by value, `None` only where
the annotation allows it, no unknown names, nothing required missing. Query strings are
converted first (`"3"` → 3 for an int parameter, `"true"` → True for a bool).
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from .._exceptions import BadInputError

__all__ = ["Param", "bind", "check", "from_query", "params_of"]

_REQUIRED = inspect.Parameter.empty


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
    """`value` if it fits `param`'s annotation. Raises `BadInputError` naming the argument."""
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
        if member is int and text.lstrip("-").isdigit():
            return int(text)
        if member is float:
            try:
                return float(text)
            except ValueError:
                continue
    return text


def _describe(annotation: Any) -> str:
    return " | ".join(getattr(m, "__name__", str(m)) for m in _members(annotation))
