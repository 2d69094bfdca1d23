"""Fixtures for the LLM layer: a local OpenAI-compatible server and a provider pointed at it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import anyio.lowlevel
import pytest

from aifactory._retry import RetryPolicy
from aifactory.llm import OpenAIProvider
from tests.openai_server import OpenAIServer, openai_server, openai_server_session

__all__ = ["SleepRecorder", "openai_server", "openai_server_session"]


class SleepRecorder:
    """An injected `sleep` that records how long the provider wanted to wait, and returns."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def api_key() -> str:
    return f"sk-test-{secrets.token_hex(24)}"


@pytest.fixture
def server(openai_server: OpenAIServer, api_key: str) -> OpenAIServer:
    """The local server, insisting on `api_key`, so every test also checks the key was sent."""
    openai_server.reset(api_key=api_key)
    return openai_server


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def retry() -> RetryPolicy:
    return RetryPolicy(initial_interval_s=0.5, maximum_interval_s=4.0, jitter=0.1)


@pytest.fixture
async def provider(
    server: OpenAIServer, api_key: str, sleeps: SleepRecorder, retry: RetryPolicy
) -> AsyncIterator[OpenAIProvider]:
    async with OpenAIProvider(
        "gpt-4o-mini",
        api_key=api_key,
        base_url=server.base_url,
        max_retries=3,
        retry=retry,
        sleep=sleeps,
    ) as llm:
        yield llm
