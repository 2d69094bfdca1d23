"""Structured output without I/O: check a schema, judge a reply, word the re-ask.

The provider sends and re-sends; this module only decides.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import jsonschema

from .._exceptions import BadInputError

__all__ = ["RejectedReply", "parse_reply", "reask", "schema_validator"]

_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RejectedReply(Exception):
    """A reply that is not JSON, or not JSON the schema accepts; `str()` says exactly why."""


def schema_validator(
    schema: Mapping[str, Any], schema_name: str
) -> jsonschema.Draft202012Validator:
    """A JSON Schema 2020-12 validator for `schema`, named as OpenAI's API requires.

    Raises `BadInputError` when the name is not 1 to 64 of `[A-Za-z0-9_-]` or the schema is
    not a valid JSON Schema.
    """
    if not _SCHEMA_NAME.fullmatch(schema_name):
        raise BadInputError(
            "a schema name is 1 to 64 letters, digits, '_' or '-'",
            details={"schema_name": schema_name},
        )
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise BadInputError(
            f"the schema {schema_name!r} is not a valid JSON Schema: {exc.message}",
            details={"schema_name": schema_name, "error": exc.message},
        ) from exc
    return jsonschema.Draft202012Validator(schema)


def parse_reply(text: str, validator: jsonschema.protocols.Validator) -> Any:
    """The JSON in `text`, checked against the schema.

    Raises `RejectedReply` with the JSON decoder's message, or the most relevant schema
    violation and where it is (`$.items[2].title`).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RejectedReply(f"the reply is not valid JSON: {exc}") from exc
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        raise RejectedReply(
            f"the reply does not match the schema at {error.json_path}: {error.message}"
        )
    return data


def reask(rejected: RejectedReply, schema_name: str) -> str:
    """The user message that asks again, quoting the exact error."""
    return (
        f"Your previous reply was rejected because {rejected}. Answer again with only a "
        f"JSON value that satisfies the {schema_name!r} schema, with no other text."
    )
