"""Rate limits, server and connection errors are retried with backoff; other 4xx are not."""

from __future__ import annotations

import logging
import socket

import openai
import pytest

from aifactory import (
    AIFactoryError,
    AuthenticationError,
    BadInputError,
    PermissionDeniedError,
    WorkerError,
)
from aifactory._retry import RetryPolicy
from aifactory.llm import Message, OpenAIProvider
from tests.llm.conftest import SleepRecorder
from tests.openai_server import (
    OpenAIServer,
    ScriptedCompletion,
    ScriptedError,
    bad_request,
    forbidden,
    rate_limited,
    server_error,
    unauthorized,
)

pytestmark = pytest.mark.anyio

ASK = [Message("user", "Say hello.")]


async def test_rate_limit_then_success_is_retried_with_backoff(
    provider: OpenAIProvider, server: OpenAIServer, sleeps: SleepRecorder, retry: RetryPolicy
) -> None:
    server.add(rate_limited(), rate_limited(), rate_limited(), "hello")

    reply = await provider.complete(ASK)

    assert reply.text == "hello"
    assert len(server.completions) == 4
    assert len(sleeps.delays) == 3
    for attempt, delay in enumerate(sleeps.delays, start=1):
        low, high = retry.delay_bounds(attempt)
        assert low <= delay <= high
    # About 0.5, 1, 2 seconds, each ±10 %: each wait is longer than the last.
    assert sleeps.delays == sorted(sleeps.delays)


async def test_retry_after_is_honoured(
    provider: OpenAIProvider, server: OpenAIServer, sleeps: SleepRecorder
) -> None:
    server.add(rate_limited(retry_after="3"), "hello")

    await provider.complete(ASK)

    assert sleeps.delays == [3.0]


async def test_retry_after_is_honoured_up_to_its_cap_and_never_shortens_the_wait(
    provider: OpenAIProvider, server: OpenAIServer, sleeps: SleepRecorder, retry: RetryPolicy
) -> None:
    server.add(rate_limited(retry_after="600"), rate_limited(retry_after="0.01"), "hello")

    await provider.complete(ASK)

    # A server asking for ten minutes waits the provider's cap (60 s); one asking for less
    # than the policy's own wait gets the policy's wait.
    low, high = retry.delay_bounds(2)
    assert sleeps.delays[0] == 60.0
    assert low <= sleeps.delays[1] <= high


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retried(
    provider: OpenAIProvider, server: OpenAIServer, sleeps: SleepRecorder, status: int
) -> None:
    server.add(server_error(status), "recovered")

    reply = await provider.complete(ASK)

    assert reply.text == "recovered"
    assert len(sleeps.delays) == 1


async def test_server_errors_give_up_after_max_retries(
    provider: OpenAIProvider, server: OpenAIServer, sleeps: SleepRecorder
) -> None:
    server.add(*[server_error()] * 5)

    with pytest.raises(WorkerError, match="answered 500") as caught:
        await provider.complete(ASK)

    error = caught.value
    assert type(error) is WorkerError
    assert len(server.completions) == 4  # the first attempt and 3 retries
    assert len(sleeps.delays) == 3
    assert server.pending == 1
    assert error.details["status"] == 500
    assert error.details["attempts"] == 4
    assert "gave up after 4 attempts" in error.message
    assert isinstance(error.__cause__, openai.InternalServerError)


async def test_rate_limits_give_up_after_max_retries(
    provider: OpenAIProvider, server: OpenAIServer, sleeps: SleepRecorder
) -> None:
    server.add(*[rate_limited()] * 4)

    with pytest.raises(WorkerError, match="answered 429") as caught:
        await provider.complete(ASK)

    assert caught.value.details["error_code"] == "rate_limit_exceeded"
    assert len(server.completions) == 4


async def test_no_retries_means_one_attempt(
    server: OpenAIServer, api_key: str, sleeps: SleepRecorder
) -> None:
    server.add(server_error(), "never reached")
    async with OpenAIProvider(
        "gpt-4o-mini", api_key=api_key, base_url=server.base_url, max_retries=0, sleep=sleeps
    ) as llm:
        with pytest.raises(WorkerError):
            await llm.complete(ASK)

    assert len(server.completions) == 1
    assert sleeps.delays == []


async def test_connection_errors_are_retried_then_fail(api_key: str, sleeps: SleepRecorder) -> None:
    with socket.socket() as probe:  # a port on loopback that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with OpenAIProvider(
        "gpt-4o-mini",
        api_key=api_key,
        base_url=f"http://127.0.0.1:{port}/v1",
        max_retries=2,
        sleep=sleeps,
    ) as llm:
        with pytest.raises(WorkerError, match="could not connect") as caught:
            await llm.complete(ASK)

    assert caught.value.details["attempts"] == 3
    assert len(sleeps.delays) == 2
    assert isinstance(caught.value.__cause__, openai.APIConnectionError)


@pytest.mark.parametrize(
    ("scripted", "expected"),
    [
        (bad_request("'messages' must not be empty.", code="invalid_value"), BadInputError),
        (ScriptedError(422, "Unprocessable."), BadInputError),
        (unauthorized(), AuthenticationError),
        (forbidden(), PermissionDeniedError),
        (
            ScriptedError(404, "The model 'gpt-9' does not exist.", code="model_not_found"),
            WorkerError,
        ),
        (ScriptedError(409, "Conflict."), WorkerError),
    ],
)
async def test_client_errors_are_not_retried(
    provider: OpenAIProvider,
    server: OpenAIServer,
    sleeps: SleepRecorder,
    scripted: ScriptedError,
    expected: type[AIFactoryError],
) -> None:
    server.add(scripted, "never reached")

    with pytest.raises(expected) as caught:
        await provider.complete(ASK)

    assert type(caught.value) is expected
    assert scripted.message in caught.value.message
    assert caught.value.details["status"] == scripted.status
    assert caught.value.details["attempts"] == 1
    assert isinstance(caught.value.__cause__, openai.APIStatusError)
    assert len(server.completions) == 1
    assert sleeps.delays == []


async def test_a_wrong_key_is_an_authentication_error(server: OpenAIServer) -> None:
    async with OpenAIProvider("gpt-4o-mini", api_key="wrong", base_url=server.base_url) as llm:
        with pytest.raises(AuthenticationError, match="answered 401") as caught:
            await llm.complete(ASK)

    assert caught.value.details["error_code"] == "invalid_api_key"
    assert isinstance(caught.value.__cause__, openai.AuthenticationError)


async def test_the_key_never_appears_in_errors_or_logs(
    provider: OpenAIProvider,
    server: OpenAIServer,
    api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A careless server echoes the key back, in a retried error and in a final one.
    server.add(
        ScriptedError(503, f"Overloaded while serving key {api_key}.", type="server_error"),
        unauthorized(f"Incorrect API key provided: {api_key}."),
    )

    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as caught:
        await provider.complete(ASK)

    error = caught.value
    assert "Incorrect API key provided: [redacted]" in error.message
    for text in (str(error), repr(error), error.message, repr(error.details), caplog.text):
        assert api_key not in text
    assert "retry 1 of 3" in caplog.text


async def test_a_timeout_is_retried(
    server: OpenAIServer, api_key: str, sleeps: SleepRecorder
) -> None:
    server.add(ScriptedCompletion("too late", delay_s=1.0), "in time")
    async with OpenAIProvider(
        "gpt-4o-mini", api_key=api_key, base_url=server.base_url, timeout_s=0.25, sleep=sleeps
    ) as llm:
        reply = await llm.complete(ASK)

    assert reply.text == "in time"
    assert len(server.completions) == 2
    assert len(sleeps.delays) == 1


async def test_timeouts_give_up_after_max_retries(
    server: OpenAIServer, api_key: str, sleeps: SleepRecorder
) -> None:
    server.add(*[ScriptedCompletion("too late", delay_s=1.0)] * 2)
    async with OpenAIProvider(
        "gpt-4o-mini",
        api_key=api_key,
        base_url=server.base_url,
        timeout_s=0.25,
        max_retries=1,
        sleep=sleeps,
    ) as llm:
        with pytest.raises(WorkerError, match="timed out") as caught:
            await llm.complete(ASK)

    assert caught.value.details["attempts"] == 2
    assert isinstance(caught.value.__cause__, openai.APITimeoutError)
