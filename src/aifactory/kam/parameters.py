"""Checking request parameters against a template's parameter schema (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jsonschema

from .._exceptions import ParameterError
from ..models import ParameterSpec, Template, Tier

__all__ = ["check_value", "validate_parameters"]


def check_value(spec: ParameterSpec, value: Any) -> str | None:
    """What is wrong with `value` for the parameter `spec` (`"must be ..."`), or `None`."""
    return _check(spec, value)


def _check(spec: ParameterSpec, value: Any) -> str | None:
    kind = spec.type
    if kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        return "must be an integer"
    if kind == "number" and (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        return "must be a finite number"
    if kind == "boolean" and not isinstance(value, bool):
        return "must be true or false"
    if kind in ("string", "enum") and not isinstance(value, str):
        return "must be a string"
    if kind == "object" and not isinstance(value, Mapping):
        return "must be an object"
    if kind == "array" and not isinstance(value, list):
        return "must be a list"
    if kind in ("object", "array") and spec.schema is not None:
        problem = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(spec.schema).iter_errors(value)
        )
        if problem is not None:
            where = "".join(f"[{p!r}]" for p in problem.absolute_path)
            return f"{where} {problem.message}".strip()
    if kind == "enum" and value not in spec.choices:
        return f"must be one of {list(spec.choices)}"
    if kind == "string" and spec.max_length is not None and len(value) > spec.max_length:
        return f"must be at most {spec.max_length} characters"
    if kind in ("integer", "number"):
        if spec.minimum is not None and value < spec.minimum:
            return f"must be at least {spec.minimum:g}"
        if spec.maximum is not None and value > spec.maximum:
            return f"must be at most {spec.maximum:g}"
    return None


def validate_parameters(template: Template, tier: Tier, given: Mapping[str, Any]) -> dict[str, Any]:
    """The complete parameters (defaults filled in) for `given`, checked for a client of `tier`.

    Refuses parameters the template does not declare (or that `tier` may not see), values a
    tier may not edit, missing required parameters, and values of the wrong type or range.
    Raises `ParameterError` listing every problem in `details["errors"]`.
    """
    specs = {p.name: p for p in template.parameters if tier in p.visible_tiers}
    errors: list[dict[str, str]] = []
    for name in given:
        if name not in specs:
            errors.append({"parameter": name, "error": "unknown parameter"})
    result: dict[str, Any] = {}
    for name, spec in specs.items():
        value = given.get(name)
        if value is not None and tier not in spec.editable_tiers and value != spec.default:
            errors.append({"parameter": name, "error": f"not editable on the {tier.value} tier"})
            continue
        if value is None:
            value = spec.default
        if value is None:
            if spec.required:
                errors.append({"parameter": name, "error": "is required"})
            continue
        problem = _check(spec, value)
        if problem:
            errors.append({"parameter": name, "error": problem})
        else:
            result[name] = value
    if errors:
        summary = "; ".join(f"{e['parameter']}: {e['error']}" for e in errors)
        raise ParameterError(
            f"invalid parameters for template {template.name}: {summary}",
            details={"errors": errors, "template": template.name},
        )
    return result
