"""What a client learns when HTTP goes wrong: which way it went, and the server's request id.

Real sockets on 127.0.0.1: a port nobody listens on (the connection is refused), a socket
that accepts and never answers (a timeout), and a real uvicorn server (ids on answers, in
errors and in the log).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from aifactory import (
    AsyncFactory,
    ConnectionFailedError,
    NotFoundError,
    TransportError,
    TransportTimeoutError,
)
from aifactory._embedded import EmbeddedFactory
from aifactory.server import factory_app
from aifactory.transports.http import HttpFactoryTransport
from tests.helpers import ADMIN, fast_config
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_connection_is_a_connection_failure() -> None:
    transport = HttpFactoryTransport(f"http://127.0.0.1:{_unused_port()}", connect_retries=1)
    try:
        with pytest.raises(ConnectionFailedError) as failed:
            await transport.call("auth.me", "token")
    finally:
        await transport.aclose()
    assert isinstance(failed.value, TransportError)
    assert failed.value.details["error"] == "ConnectError"


async def test_no_answer_in_time_is_a_timeout() -> None:
    with socket.socket() as silent:  # accepts (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        transport = HttpFactoryTransport(url, timeout_s=0.3)
        try:
            with pytest.raises(TransportTimeoutError) as late:
                await transport.call("auth.me", "token")
        finally:
            await transport.aclose()
    assert not isinstance(late.value, ConnectionFailedError)  # it may have been carried out
    assert late.value.status == 504


@pytest.fixture
async def served() -> AsyncIterator[tuple[EmbeddedFactory, str]]:
    async with EmbeddedFactory(fast_config()) as factory:
        with UvicornThread(factory_app(factory)) as server:
            yield factory, server.url


async def test_errors_carry_the_request_id_the_server_logged(
    served: tuple[EmbeddedFactory, str], caplog: pytest.LogCaptureFixture
) -> None:
    factory, url = served
    password = await factory.accounts.bootstrap_admin(ADMIN)
    async with AsyncFactory.connect(url) as client:
        admin = await client.login(ADMIN, password, login_type="admin")
        with (
            caplog.at_level(logging.INFO, logger="aifactory.server"),
            pytest.raises(NotFoundError) as missing,
        ):
            await admin.requests.get("req_nosuch")
    request_id = missing.value.request_id
    assert request_id is not None
    assert request_id.startswith("req_")
    logged = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert logged == [f"GET /api/kam/requests/req_nosuch -> 404 not_found [{request_id}]"]
    # Every answer is named, successes too, each request differently.
    async with httpx.AsyncClient() as raw:
        ids = {(await raw.get(f"{url}/health")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
