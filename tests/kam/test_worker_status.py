"""The staff's view of the workers (`executions.workers`): what the orchestrator's registry
says of each endpoint, in process and over HTTP, and who may ask."""

from __future__ import annotations

import socket

import pytest

from aifactory import AsyncFactory, PermissionDeniedError
from aifactory._embedded import EmbeddedFactory
from aifactory.auth.signing import generate_worker_key
from aifactory.transports import HttpWorkerTransport
from aifactory.transports.factory import InProcessFactoryTransport
from aifactory.workers import ContentGranulator, ReportBuilder
from tests.helpers import fast_config, setup_people

pytestmark = pytest.mark.anyio


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


async def test_staff_see_each_endpoint_ready_or_unreachable_and_clients_may_not_ask() -> None:
    # The feed fetcher is reached over HTTP at a port where nothing listens.
    away = HttpWorkerTransport(
        f"http://127.0.0.1:{_closed_port()}",
        "feed_fetcher",
        generate_worker_key("orchestrator"),
        timeout_s=2.0,
        connect_retries=0,
    )
    config = fast_config(workers=[ContentGranulator(), ReportBuilder()])
    async with EmbeddedFactory(config, endpoints=[away]) as runtime:
        people = await setup_people(AsyncFactory(InProcessFactoryTransport(runtime)))
        found = {s.worker: s for s in await people.admin.executions.workers()}
        with pytest.raises(PermissionDeniedError):
            await people.ana.executions.workers()

    assert sorted(found) == ["content_granulator", "feed_fetcher", "report_builder"]
    granulator = found["content_granulator"]
    assert (granulator.state, granulator.local) == ("ready", True)
    assert granulator.slots_total >= 1
    assert granulator.slots_free == granulator.slots_total
    assert granulator.capabilities  # its actions
    assert granulator.last_seen == runtime.config.clock.now()
    assert (granulator.failures, granulator.last_failure) == (0, None)
    fetcher = found["feed_fetcher"]
    assert (fetcher.state, fetcher.local, fetcher.slots_total) == ("unreachable", False, 0)
    assert (fetcher.last_seen, fetcher.failures) == (None, 1)
    assert fetcher.last_failure == runtime.config.clock.now()
