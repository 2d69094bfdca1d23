"""`OpenAIProvider` through the real `openai` client against a local OpenAI-compatible server."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from aifactory import WorkerError
from aifactory.llm import LLM, Message, ModelPrice, OpenAIProvider, PriceTable, TokenUsage
from tests.llm.conftest import SleepRecorder
from tests.openai_server import OpenAIServer, ScriptedCompletion

pytestmark = pytest.mark.anyio

CHAT = [
    Message("system", "You summarise articles in one sentence."),
    Message("user", "Article: The river rose two metres overnight."),
]


async def test_plain_text_reply(provider: OpenAIProvider, server: OpenAIServer) -> None:
    server.add(ScriptedCompletion("The river flooded.", prompt_tokens=31, completion_tokens=5))

    reply = await provider.complete(CHAT)

    assert reply.text == "The river flooded."
    assert reply.data is None
    assert reply.model == "gpt-4o-mini"
    assert reply.usage == TokenUsage(31, 5)
    [sent] = server.completions
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [
        {"role": "system", "content": "You summarise articles in one sentence."},
        {"role": "user", "content": "Article: The river rose two metres overnight."},
    ]
    assert "response_format" not in sent
    assert "temperature" not in sent
    assert "max_tokens" not in sent


async def test_sampling_options_are_sent(provider: OpenAIProvider, server: OpenAIServer) -> None:
    server.add("ok")

    await provider.complete(CHAT, temperature=0.2, max_tokens=64)

    [sent] = server.completions
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 64


async def test_the_key_is_sent_as_a_bearer_token(
    provider: OpenAIProvider, server: OpenAIServer, api_key: str
) -> None:
    server.add("ok")

    await provider.complete(CHAT)

    assert server.requests[0].headers["authorization"] == f"Bearer {api_key}"


async def test_default_usage_comes_from_the_server(
    provider: OpenAIProvider, server: OpenAIServer
) -> None:
    server.add("x" * 40)

    reply = await provider.complete([Message("user", "y" * 80)])

    # The server estimates 4 characters a token plus 4 per message.
    assert reply.usage == TokenUsage(prompt_tokens=24, completion_tokens=10)


async def test_cost_is_exact_decimal_from_the_price_table(
    provider: OpenAIProvider, server: OpenAIServer
) -> None:
    server.add(ScriptedCompletion("summary", prompt_tokens=1234, completion_tokens=567))

    reply = await provider.complete(CHAT)

    # gpt-4o-mini: 1234 * 0.15 / 1e6 + 567 * 0.60 / 1e6
    assert reply.cost_usd == Decimal("0.0005253")
    assert str(reply.cost_usd) == "0.0005253"


async def test_cost_uses_overridden_prices(server: OpenAIServer, api_key: str) -> None:
    prices = PriceTable().with_prices({"gpt-4o-mini": ModelPrice("1", "3")})
    server.add(ScriptedCompletion("ok", prompt_tokens=1_000_000, completion_tokens=1))
    async with OpenAIProvider(
        "gpt-4o-mini", api_key=api_key, base_url=server.base_url, prices=prices
    ) as llm:
        reply = await llm.complete(CHAT)

    assert reply.cost_usd == Decimal("1.000003")


async def test_an_unpriced_model_costs_nothing(server: OpenAIServer, api_key: str) -> None:
    server.add(ScriptedCompletion("ok", prompt_tokens=500, completion_tokens=500))
    async with OpenAIProvider("llama3.1:8b", api_key=api_key, base_url=server.base_url) as llm:
        reply = await llm.complete(CHAT)

    assert reply.model == "llama3.1:8b"
    assert reply.usage == TokenUsage(500, 500)
    assert reply.cost_usd == Decimal(0)


async def test_a_dated_snapshot_is_priced_by_the_configured_name(
    provider: OpenAIProvider, server: OpenAIServer
) -> None:
    server.add(
        ScriptedCompletion(
            "ok", prompt_tokens=1000, completion_tokens=0, model="gpt-4o-mini-2024-07-18"
        )
    )

    reply = await provider.complete(CHAT)

    assert reply.model == "gpt-4o-mini-2024-07-18"
    assert reply.cost_usd == Decimal("0.00015")


async def test_a_refusal_is_a_worker_error(provider: OpenAIProvider, server: OpenAIServer) -> None:
    server.add(ScriptedCompletion(None, refusal="I can't help with that."))

    with pytest.raises(WorkerError, match="refused: I can't help with that") as caught:
        await provider.complete(CHAT)

    assert caught.value.details["refusal"] == "I can't help with that."


async def test_provider_satisfies_the_llm_protocol(provider: OpenAIProvider) -> None:
    llm: LLM = provider
    assert llm.model == "gpt-4o-mini"


async def test_a_given_http_client_is_used_and_left_open(
    server: OpenAIServer, api_key: str
) -> None:
    seen: list[str] = []

    async def note(request: httpx.Request) -> None:
        seen.append(str(request.url))

    async with httpx.AsyncClient(event_hooks={"request": [note]}) as client:
        async with OpenAIProvider(
            "gpt-4o-mini", api_key=api_key, base_url=server.base_url, http_client=client
        ) as llm:
            server.add("through the given client")
            reply = await llm.complete(CHAT)
        assert not client.is_closed

    assert reply.text == "through the given client"
    assert seen == [f"{server.base_url}/chat/completions"]


async def test_repr_names_model_and_server_but_not_the_key(
    provider: OpenAIProvider, server: OpenAIServer, api_key: str
) -> None:
    text = repr(provider)

    assert "gpt-4o-mini" in text
    assert server.base_url in text
    assert api_key not in text
    assert api_key not in str(provider)


async def test_empty_key_or_model_is_refused(server: OpenAIServer, sleeps: SleepRecorder) -> None:
    from aifactory import BadInputError

    with pytest.raises(BadInputError, match="API key"):
        OpenAIProvider("gpt-4o-mini", api_key="", base_url=server.base_url)
    with pytest.raises(BadInputError, match="model"):
        OpenAIProvider("", api_key="k", base_url=server.base_url)
    with pytest.raises(BadInputError, match="max_retries"):
        OpenAIProvider("gpt-4o-mini", api_key="k", max_retries=-1)
    assert server.requests == []
