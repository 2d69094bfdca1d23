"""Posted forms: reading them, and the parameter form generated from a template's schema.

A form turns text into the JSON values the operation expects and nothing more: whether a
value is allowed is for the operation to say (`ParameterError`, `BadInputError`), and its
errors are shown next to the field they name. A text that is not a number where a number
is wanted is passed on as text, so that the operation refuses it in its own words.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import attrs
from starlette.requests import Request

from ..._exceptions import AIFactoryError, BadInputError, PayloadTooLargeError
from ...models import ParameterSpec, Template, Tier

__all__ = [
    "MAX_FORM_BYTES",
    "ParameterField",
    "field_errors",
    "parameter_fields",
    "parameters_from_form",
    "read_form",
]

#: The largest form a page posts (a request's description is at most 10,000 characters).
MAX_FORM_BYTES = 64 * 1024
_PREFIX = "param."


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a posted `application/x-www-form-urlencoded` form (first value of each
    name; none for an empty body). Raises `BadInputError` for another body type or bad encoding, and
    `PayloadTooLargeError` beyond `MAX_FORM_BYTES`."""
    too_large = PayloadTooLargeError(
        f"forms are limited to {MAX_FORM_BYTES} bytes", details={"max_bytes": MAX_FORM_BYTES}
    )
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise too_large
    body = bytearray()
    # Closed at once when it stops early: an abandoned stream would be finalised who knows when.
    async with contextlib.aclosing(request.stream()) as chunks:
        async for chunk in chunks:
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise too_large
    if not body:
        return {}  # a form without fields (and then without its CSRF token)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadInputError("pages post url-encoded forms")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=200
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInputError("the form could not be read") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def field_errors(error: AIFactoryError) -> dict[str, str]:
    """An operation's error as messages by form field: a template parameter's
    (`details["errors"]`) under `param.NAME`, another field's (`details["field"]`) under its
    name, anything else under `""` (the form as a whole)."""
    found: dict[str, str] = {}
    for problem in error.details.get("errors", []):
        if isinstance(problem, dict) and isinstance(problem.get("parameter"), str):
            found[_PREFIX + problem["parameter"]] = str(problem.get("error", "is not valid"))
    field = error.details.get("field")
    if isinstance(field, str) and not found:
        found[field] = error.message
    if not found:
        found[""] = error.message
    return found


@attrs.frozen
class ParameterField:
    """One field of the parameter form: its spec, the text shown, whether the client's tier
    may change it, and its error."""

    spec: ParameterSpec
    text: str
    editable: bool
    error: str | None = None

    @property
    def name(self) -> str:
        """The form field's name."""
        return _PREFIX + self.spec.name

    @property
    def input_type(self) -> str:
        """The HTML control: `number`, `select` (enums and booleans) or `text`."""
        if self.spec.type in ("integer", "number"):
            return "number"
        if self.spec.type in ("enum", "boolean"):
            return "select"
        return "text"

    @property
    def options(self) -> tuple[tuple[str, str], ...]:
        """(value, label) of a select's options; the empty value means the default."""
        default = "" if self.spec.default is None else _text(self.spec.default)
        first = ("", f"default ({default})" if default else "(none)")
        if self.spec.type == "boolean":
            return (first, ("true", "yes"), ("false", "no"))
        return (first, *((c, c) for c in self.spec.choices))

    @property
    def step(self) -> str:
        """The number input's step: whole numbers for integers."""
        return "1" if self.spec.type == "integer" else "any"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parameter_fields(
    template: Template,
    tier: Tier,
    values: Mapping[str, Any],
    errors: Mapping[str, str] | None = None,
) -> list[ParameterField]:
    """The fields of `template`'s parameters a client of `tier` sees, showing `values` (a
    form's texts under `param.NAME`, or a request's parameters by name) and `errors`."""
    errors = errors or {}
    fields = []
    for spec in template.parameters:
        if tier not in spec.visible_tiers:
            continue
        name = _PREFIX + spec.name
        given = values.get(name, values.get(spec.name))
        text = "" if given is None else _text(given)
        fields.append(ParameterField(spec, text, tier in spec.editable_tiers, errors.get(name)))
    return fields


def _value(spec: ParameterSpec, text: str) -> Any:
    if spec.type == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    if spec.type == "number":
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    if spec.type == "boolean":
        return {"true": True, "false": False}.get(text, text)
    return text


def parameters_from_form(template: Template, tier: Tier, form: Mapping[str, str]) -> dict[str, Any]:
    """The parameters a posted parameter form gives: the fields filled in, as JSON values of
    their declared types (an empty field means the default). Fields the tier may not edit
    are left to their defaults, as a disabled control is not posted."""
    given: dict[str, Any] = {}
    for spec in template.parameters:
        if tier not in spec.visible_tiers or tier not in spec.editable_tiers:
            continue
        text = form.get(_PREFIX + spec.name, "").strip()
        if text:
            given[spec.name] = _value(spec, text)
    return given
