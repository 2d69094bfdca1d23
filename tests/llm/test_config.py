"""`LLMConfig`: one value describing the model; built into an `OpenAIProvider`."""

from __future__ import annotations

import secrets

import pytest

from aifactory import BadInputError
from aifactory.llm import LLMConfig, Message, ModelPrice, OpenAIProvider, PriceTable
from tests.openai_server import OpenAIServer


@pytest.fixture
def key() -> str:
    return f"sk-{secrets.token_hex(20)}"


def test_no_key_and_no_server_means_no_llm() -> None:
    assert LLMConfig.from_environment({}) is None
    assert LLMConfig.from_environment({"OPENAI_API_KEY": "", "AIFACTORY_LLM_MODEL": "x"}) is None


def test_openai_key_alone_selects_openai_with_the_default_model(key: str) -> None:
    config = LLMConfig.from_environment({"OPENAI_API_KEY": key})

    assert config == LLMConfig(model="gpt-4o-mini", api_key=key)
    assert config.base_url is None


def test_the_aifactory_key_wins_over_the_openai_key(key: str) -> None:
    config = LLMConfig.from_environment(
        {"OPENAI_API_KEY": "sk-other", "AIFACTORY_LLM_API_KEY": key}
    )

    assert config is not None
    assert config.api_key == key


def test_a_server_without_a_key_is_enough() -> None:
    config = LLMConfig.from_environment(
        {"AIFACTORY_LLM_BASE_URL": "http://127.0.0.1:11434/v1", "AIFACTORY_LLM_MODEL": "qwen3"}
    )

    assert config == LLMConfig(model="qwen3", base_url="http://127.0.0.1:11434/v1")
    assert config.api_key is None


def test_other_variables_are_ignored(key: str) -> None:
    config = LLMConfig.from_environment({"OPENAI_API_KEY": key, "HOME": "/root", "PATH": "/bin"})

    assert config == LLMConfig(api_key=key)


def test_the_key_stays_out_of_repr_and_str(key: str) -> None:
    config = LLMConfig(model="gpt-4o", api_key=key, base_url="http://127.0.0.1:1/v1")

    assert key not in repr(config)
    assert key not in str(config)
    assert "gpt-4o" in repr(config)
    assert "api_key" not in repr(config)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"provider": "anthropic"}, "provider"),
        ({"model": ""}, "model"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, object], field: str) -> None:
    with pytest.raises(BadInputError, match=field.split("_")[0]):
        LLMConfig(**changes)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_build_makes_a_provider_that_works(openai_server: OpenAIServer, key: str) -> None:
    openai_server.reset(["built"], api_key=key)
    prices = PriceTable({"local-model": ModelPrice("1", "1")})
    config = LLMConfig(
        model="local-model", api_key=key, base_url=openai_server.base_url, prices=prices
    )

    llm = config.build()
    assert isinstance(llm, OpenAIProvider)
    async with llm:
        reply = await llm.complete([Message("user", "hi")])

    assert repr(llm) == f"OpenAIProvider(model='local-model', base_url='{openai_server.base_url}')"
    assert reply.text == "built"
    assert reply.cost_usd == prices.cost("local-model", reply.usage)
    assert reply.cost_usd > 0


@pytest.mark.anyio
async def test_without_a_key_a_placeholder_is_sent(openai_server: OpenAIServer) -> None:
    openai_server.add("no key needed")
    llm = LLMConfig(model="qwen3", base_url=openai_server.base_url).build()
    assert isinstance(llm, OpenAIProvider)
    async with llm:
        reply = await llm.complete([Message("user", "hi")])

    assert reply.text == "no key needed"
    assert openai_server.requests[0].headers["authorization"] == "Bearer no-key-configured"
