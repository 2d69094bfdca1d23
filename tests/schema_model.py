"""A scripted model that answers any JSON-schema request with a valid, deterministic instance.

Used as the local OpenAI-compatible server's default reply in end-to-end tests, so every
worker's model path runs through the real `openai` client without hand-writing each answer.
Array items get their index, so an `enum` of ids is answered one id per item, in order, and
an integer `order` numbers siblings 1..n, as a tree's elements are.
"""

from __future__ import annotations

import json
from typing import Any


def instance(schema: dict[str, Any], index: int = 0, label: str = "item") -> Any:
    """A value that satisfies `schema` (the subset of JSON Schema the workers use)."""
    if "enum" in schema:
        return schema["enum"][index % len(schema["enum"])]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: instance(sub, index, name) for name, sub in props.items()}
    if kind == "array":
        count = max(schema.get("minItems", 1), 1)
        count = min(count, schema.get("maxItems", count))
        return [instance(schema.get("items", {}), i, label) for i in range(count)]
    if kind == "integer" and label == "order":
        return index + 1
    if kind in ("number", "integer"):
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 100)
        value = low + (high - low) * (0.6 + 0.1 * (index % 3))
        return int(value) if kind == "integer" else round(value, 3)
    if kind == "boolean":
        return True
    text = f"Sample {label.replace('_', ' ')} number {index + 1} about the topic."
    low, high = schema.get("minLength", 1), schema.get("maxLength", 200)
    text = text[:high]
    return text + "x" * max(0, low - len(text))


def answer(body: dict[str, Any]) -> Any:
    """The reply to one chat-completion request body."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return json.dumps(instance(fmt["json_schema"]["schema"]))
    return "A plain answer."
