"""Structured output: the schema is sent, the reply checked, and re-asked once when it fails."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from aifactory import BadInputError, WorkerError
from aifactory.llm import Message, OpenAIProvider, PriceTable, TokenUsage
from tests.openai_server import OpenAIServer, ScriptedCompletion

pytestmark = pytest.mark.anyio

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["title", "score"],
    "additionalProperties": False,
}
ASK = [
    Message("system", "Rate the article's relevance to the topic."),
    Message("user", "Topic: floods. Article: The river rose two metres overnight."),
]
GOOD = {"title": "River rises", "score": 0.9}


def json_error(text: str) -> str:
    """The exact message `json` gives for `text`."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return str(exc)
    raise AssertionError(f"{text!r} is valid JSON")


async def test_structured_reply_is_parsed_and_checked(
    provider: OpenAIProvider, server: OpenAIServer
) -> None:
    server.add(GOOD)

    reply = await provider.complete(ASK, schema=SCHEMA, schema_name="relevance")

    assert reply.data == GOOD
    assert json.loads(reply.text) == GOOD
    [sent] = server.completions
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "relevance", "schema": SCHEMA, "strict": True},
    }


async def test_malformed_json_is_reasked_once_with_the_error(
    provider: OpenAIProvider, server: OpenAIServer
) -> None:
    bad = '{"title": "River rises", "score": 0.9'
    server.add(
        ScriptedCompletion(bad, prompt_tokens=100, completion_tokens=12),
        ScriptedCompletion(json.dumps(GOOD), prompt_tokens=140, completion_tokens=13),
    )

    reply = await provider.complete(ASK, schema=SCHEMA, schema_name="relevance")

    assert reply.data == GOOD
    assert reply.usage == TokenUsage(240, 25)
    assert reply.cost_usd == PriceTable().cost("gpt-4o-mini", TokenUsage(240, 25))
    assert reply.cost_usd == Decimal("0.000051")
    first, second = server.completions
    assert second["messages"][:2] == first["messages"]
    assert second["messages"][2] == {"role": "assistant", "content": bad}
    reask = second["messages"][3]
    assert reask["role"] == "user"
    assert json_error(bad) in reask["content"]
    assert "'relevance'" in reask["content"]
    assert second["response_format"] == first["response_format"]


async def test_schema_violation_is_reasked_with_the_validation_error(
    provider: OpenAIProvider, server: OpenAIServer
) -> None:
    server.add({"title": "River rises", "score": 7}, GOOD)

    reply = await provider.complete(ASK, schema=SCHEMA, schema_name="relevance")

    assert reply.data == GOOD
    reask = server.completions[1]["messages"][3]["content"]
    assert "$.score" in reask
    assert "7 is greater than the maximum of 1" in reask


async def test_missing_property_is_named_in_the_reask(
    provider: OpenAIProvider, server: OpenAIServer
) -> None:
    server.add({"title": "River rises"}, GOOD)

    await provider.complete(ASK, schema=SCHEMA)

    assert "'score' is a required property" in server.completions[1]["messages"][3]["content"]


async def test_malformed_twice_is_a_worker_error(
    provider: OpenAIProvider, server: OpenAIServer
) -> None:
    server.add("Sure! Here is the JSON you asked for:", {"title": 3, "score": 0.5})

    with pytest.raises(WorkerError, match="outside the schema 'relevance' twice") as caught:
        await provider.complete(ASK, schema=SCHEMA, schema_name="relevance")

    error = caught.value
    assert error.details["schema_name"] == "relevance"
    assert "3 is not of type 'string'" in error.details["error"]
    assert "$.title" in error.details["error"]
    assert "not valid JSON" in error.details["first_error"]
    assert len(server.completions) == 2  # re-asked once, not more
    assert server.pending == 0


async def test_an_invalid_schema_is_refused_before_any_request(
    provider: OpenAIProvider, server: OpenAIServer
) -> None:
    with pytest.raises(BadInputError, match="not a valid JSON Schema"):
        await provider.complete(ASK, schema={"type": "not-a-type"})

    assert server.requests == []


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "dots.not.allowed"])
async def test_an_invalid_schema_name_is_refused(
    provider: OpenAIProvider, server: OpenAIServer, name: str
) -> None:
    with pytest.raises(BadInputError, match="schema name"):
        await provider.complete(ASK, schema=SCHEMA, schema_name=name)

    assert server.requests == []


async def test_a_scalar_schema_accepts_a_scalar(
    provider: OpenAIProvider, server: OpenAIServer
) -> None:
    server.add("42")

    reply = await provider.complete(ASK, schema={"type": "integer"})

    assert reply.data == 42
