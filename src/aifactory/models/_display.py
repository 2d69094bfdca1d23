"""How model values show themselves in a REPL or notebook: per-field `repr` callables.

The attrs default repr of an `Execution` embeds its whole `Template` and spells datetimes
as `datetime.datetime(...)`, a few thousand characters of noise in a notebook cell. These
helpers keep the attrs shape `Name(field=value, ...)` and the field order, and change only
how one field's value is written:

- datetimes as ISO 8601 strings to the millisecond (`'2026-11-28T23:03:06.627Z'`);
- enums as their value (`'completed'`: they are `StrEnum`s, so it compares equal);
- money as `Decimal('0.05')` in plain notation (`0E-8` reads `Decimal('0')`);
- small nested values (`Usage`, `Cost`, `StagePolicy`) with only their non-default fields,
  which still evaluates to an equal value;
- nested heavyweights by what names them: a template by its name, stages and parameters by
  their ids, a storage reference by its URI;
- free-form text and dicts cut to a budget, the cut marked with `…` or `...`.

Only display changes: equality, hashing, ordering and serialisation never look at repr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import attrs

__all__ = [
    "bounded",
    "bounded_repr",
    "compact",
    "decimal_repr",
    "enum_repr",
    "enums_repr",
    "iso",
    "iso_repr",
    "names_repr",
    "plain_decimal",
    "ref_repr",
    "refs_repr",
    "secret_repr",
    "short_digest_repr",
    "template_repr",
]

# Budgets in characters of the rendered repr (roughly: a cut may overshoot by a few).
TEXT = 80
"""Titles, messages, descriptions and errors."""
MAPPING = 100
"""Parameters, metadata, summaries and other free-form dicts."""
CONTEXT = 40
"""An execution's context: mostly a copy of its request's text, shown elsewhere."""
ERROR = 200
"""Errors: the first thing to read when something failed, so the longest budget."""
_SHORTEST_CUT = 8
# Keys name things; cutting a short one ("descript…") helps no one.
_KEY = 32


def iso(value: datetime) -> str:
    """`value` in ISO 8601 to the millisecond (or second, if that is exact), `Z` for UTC."""
    text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text[:-6] + "Z" if value.utcoffset() == timedelta(0) else text


def iso_repr(value: datetime | None) -> str:
    """A datetime (or `None`) as a quoted ISO 8601 string."""
    return "None" if value is None else repr(iso(value))


def enum_repr(value: Enum | None) -> str:
    """An enum member (or `None`) as its quoted value."""
    return "None" if value is None else repr(value.value)


def enums_repr(values: Iterable[Enum]) -> str:
    """A tuple of enum members as a tuple of their values."""
    return repr(tuple(member.value for member in values))


def plain_decimal(value: Decimal) -> str:
    """`value` in plain notation without trailing zeros: `0.00000196`, `50`, `0`."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def decimal_repr(value: Decimal) -> str:
    """A `Decimal` as `Decimal('plain')`, equal to `value`."""
    return f"Decimal({plain_decimal(value)!r})"


def _field_repr(value: Any) -> str:
    if isinstance(value, Decimal):
        return decimal_repr(value)
    if isinstance(value, Enum):
        return enum_repr(value)
    if isinstance(value, datetime):
        return iso_repr(value)
    return repr(value)


def compact(value: Any) -> str:
    """An attrs value written with only the fields that differ from their defaults.

    `Usage(bytes_stored=3934, compute_ms=7)`, `StagePolicy()`: still a constructor call that
    evaluates to an equal value.
    """
    if value is None:
        return "None"
    parts = []
    for field in attrs.fields(type(value)):
        current = getattr(value, field.name)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if field.default is not attrs.NOTHING and current == default:
            continue
        parts.append(f"{field.name}={_field_repr(current)}")
    return f"{type(value).__name__}({', '.join(parts)})"


def template_repr(value: Any) -> str:
    """A template by its name (the full value stays on the attribute)."""
    return repr(value.name)


def names_repr(attribute: str) -> Callable[[Iterable[Any]], str]:
    """A tuple of nested values written as the tuple of their `attribute` (ids, names)."""

    def render(values: Iterable[Any]) -> str:
        return repr(tuple(getattr(value, attribute) for value in values))

    return render


def short_digest_repr(value: str) -> str:
    """A hex digest by its first 12 digits, enough to tell blobs apart at a glance."""
    return repr(value if len(value) <= 13 else value[:12] + "…")


def secret_repr(value: str | None) -> str:
    """A secret (an API key in the reply that made it) as whether there is one, never its
    text: reprs end up in notebooks, logs and tracebacks."""
    return "None" if value is None else "'<hidden>'"


def _ref_text(value: Any) -> str:
    # `inline:` alone says nothing; its size does. The bytes themselves are never shown.
    return f"inline:<{value.size} bytes>" if value.uri == "inline:" else str(value.uri)


def ref_repr(value: Any) -> str:
    """A `StorageRef` (or `None`) by its URI, an inline one by its size."""
    return "None" if value is None else repr(_ref_text(value))


def refs_repr(value: dict[str, Any]) -> str:
    """A mapping of names to storage references, each written as by `ref_repr`."""
    return bounded({name: _ref_text(ref) for name, ref in value.items()})


def bounded(value: Any, budget: int = MAPPING) -> str:
    """`repr(value)` cut to about `budget` characters.

    Strings keep their head and end in `…` inside the quotes; dicts, lists and tuples keep
    their first items, in order, and end in `...` (as `reprlib` does). Other values are
    written in full unless longer than the budget.
    """
    return _bounded(value, max(budget, _SHORTEST_CUT))


def bounded_repr(budget: int) -> Callable[[Any], str]:
    """A field repr that writes the value with `bounded(value, budget)`."""

    def render(value: Any) -> str:
        return bounded(value, budget)

    return render


def _bounded(value: Any, budget: int) -> str:
    if isinstance(value, str):
        text = repr(value)
        if len(text) <= budget:
            return text
        return repr(value[: max(budget - 3, _SHORTEST_CUT)] + "…")
    if isinstance(value, dict):
        return _items("{", "}", list(value.items()), budget, keyed=True)
    if isinstance(value, list):
        return _items("[", "]", list(value), budget, keyed=False)
    if isinstance(value, tuple):
        close = ",)" if len(value) == 1 else ")"
        return _items("(", close, list(value), budget, keyed=False)
    text = _field_repr(value)
    return text if len(text) <= budget else text[: max(budget - 3, _SHORTEST_CUT)] + "..."


def _items(open_: str, close: str, items: list[Any], budget: int, *, keyed: bool) -> str:
    parts: list[str] = []
    used = len(open_) + len(close)
    for index, item in enumerate(items):
        # Room for this item, keeping room for a ", ..." tail unless it is the last one.
        left = budget - used - (0 if index == len(items) - 1 else len(", ..."))
        if left <= 0:
            parts.append("...")
            break
        if keyed:
            key, val = item
            key_text = _bounded(key, max(left // 2, _KEY))
            piece = f"{key_text}: {_bounded(val, max(left - len(key_text) - 2, _SHORTEST_CUT))}"
        else:
            piece = _bounded(item, left)
        if len(piece) > left:
            parts.append("...")
            break
        parts.append(piece)
        used += len(piece) + 2
    return open_ + ", ".join(parts) + close
