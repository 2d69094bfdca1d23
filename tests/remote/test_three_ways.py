"""One scenario, three ways: in process, HTTP through httpx's ASGI transport, and real
uvicorn servers on 127.0.0.1 with the orchestrator calling remote worker services. The
results must be the same."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aifactory import AsyncFactory, BadInputError, PermissionDeniedError, RandomIds, SystemClock
from aifactory._embedded import EmbeddedFactory
from aifactory.auth.signing import SignatureVerifier, generate_worker_key
from aifactory.server import factory_app, serving, worker_app
from aifactory.storage import BlobStore, StorageConfig
from aifactory.transports import HttpWorkerTransport
from aifactory.workers import ContentGranulator, ReportBuilder, WorkerHost
from tests.helpers import ADMIN, fast_config
from tests.remote.scenario import run_scenario
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio

Run = Callable[[], Awaitable[dict[str, Any]]]


async def _in_process() -> dict[str, Any]:
    async with AsyncFactory.embedded(config=fast_config()) as factory:
        password = await factory.bootstrap_admin(ADMIN)
        return await run_scenario(factory, password)


async def _asgi() -> dict[str, Any]:
    async with EmbeddedFactory(fast_config()) as runtime:
        password = await runtime.accounts.bootstrap_admin(ADMIN)
        transport = httpx.ASGITransport(app=factory_app(runtime))
        async with httpx.AsyncClient(transport=transport) as client:
            factory = AsyncFactory.connect("http://factory.test", client=client)
            async with factory:
                return await run_scenario(factory, password)


async def _uvicorn_with_worker_services(tmp: Path) -> dict[str, Any]:
    """The factory and two worker services, each a real uvicorn server on 127.0.0.1; the
    orchestrator reaches the workers over HTTP with signed requests, and data moves through
    the shared blob storage by reference."""
    config = fast_config(tmp, workers=[])
    key = generate_worker_key("orchestrator")
    verifier = SignatureVerifier({key.worker_id: key}, SystemClock())
    blobs = BlobStore(StorageConfig.local(tmp / "blobs"))
    ids = RandomIds()
    with (
        UvicornThread(
            worker_app([WorkerHost(ContentGranulator(), blobs, SystemClock(), ids)], verifier)
        ) as granulator,
        UvicornThread(
            worker_app([WorkerHost(ReportBuilder(), blobs, SystemClock(), ids)], verifier)
        ) as builder,
    ):
        endpoints = [
            HttpWorkerTransport(granulator.url, "content_granulator", key),
            HttpWorkerTransport(builder.url, "report_builder", key),
        ]
        runtime = EmbeddedFactory(config, endpoints=endpoints)
        password = await runtime.accounts.bootstrap_admin(ADMIN)
        with UvicornThread(serving(runtime)) as server:
            async with AsyncFactory.connect(server.url) as factory:
                result = await run_scenario(factory, password)
        traffic = [e.traffic.requests for e in endpoints]
    assert all(count >= 3 for count in traffic)  # handshake, process, acknowledge per stage
    return result


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    import anyio

    return anyio.run(_in_process)


@pytest.mark.parametrize("way", ["in-process", "asgi", "uvicorn"])
async def test_the_scenario_gives_the_same_results(
    way: str, expected: dict[str, Any], tmp_path: Path
) -> None:
    if way == "in-process":
        result = await _in_process()
    elif way == "asgi":
        result = await _asgi()
    else:
        result = await _uvicorn_with_worker_services(tmp_path)
    assert result == expected
    assert result["status"] == "completed"
    assert "auth.login" in result["audit"]


async def test_connect_with_an_api_key_gives_its_view() -> None:
    async with EmbeddedFactory(fast_config()) as runtime:
        password = await runtime.accounts.bootstrap_admin(ADMIN)
        transport = httpx.ASGITransport(app=factory_app(runtime))
        async with httpx.AsyncClient(transport=transport) as client:
            async with AsyncFactory.connect("http://f.test", client=client) as factory:
                admin = await factory.login(ADMIN, password, login_type="admin")
                key = (await admin.api_keys.create(name="automation")).key
                assert key is not None
                assert [k.name for k in await admin.api_keys.list()] == ["automation"]
            with_key = AsyncFactory.connect("http://f.test", api_key=key, client=client)
            view = await with_key.session()
            assert view.user.email == ADMIN
            assert await view.clients.list() == []
            with pytest.raises(BadInputError):
                await AsyncFactory.connect("http://f.test", client=client).session()
            with pytest.raises(PermissionDeniedError):
                await with_key.bootstrap_admin("x@y.example")
