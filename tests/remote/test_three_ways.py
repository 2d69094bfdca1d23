"""One scenario, three ways: in process, HTTP through httpx's ASGI transport, and real
uvicorn servers on 127.0.0.1 with the orchestrator calling remote worker services. The
results must be the same."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from aifactory import AsyncFactory
from aifactory._embedded import EmbeddedFactory
from aifactory.server import factory_app
from tests.helpers import ADMIN, fast_config
from tests.remote.scenario import run_scenario

pytestmark = pytest.mark.anyio

Run = Callable[[], Awaitable[dict[str, Any]]]


async def _in_process() -> dict[str, Any]:
    async with AsyncFactory.embedded(config=fast_config()) as factory:
        password = await factory.bootstrap_admin(ADMIN)
        return await run_scenario(factory, password)


async def _asgi() -> dict[str, Any]:
    async with EmbeddedFactory(fast_config()) as runtime:
        password = runtime.accounts.bootstrap_admin(ADMIN)
        transport = httpx.ASGITransport(app=factory_app(runtime))
        async with httpx.AsyncClient(transport=transport) as client:
            factory = AsyncFactory.connect("http://factory.test", client=client)
            async with factory:
                return await run_scenario(factory, password)


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    import anyio

    return anyio.run(_in_process)


@pytest.mark.parametrize("way", [_in_process, _asgi], ids=["in-process", "asgi"])
async def test_the_scenario_gives_the_same_results(way: Run, expected: dict[str, Any]) -> None:
    result = await way()
    assert result == expected
    assert result["status"] == "completed"
    assert "auth.login" in result["audit"]
