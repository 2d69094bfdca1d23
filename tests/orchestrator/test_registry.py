"""The worker registry: cached health, healthy endpoints first, free slots first."""

from __future__ import annotations

import anyio
import attrs
import pytest

from aifactory import ConnectionFailedError, ManualClock, SequentialIds, WorkerError
from aifactory.orchestrator import WorkerRegistry
from aifactory.protocol import WorkerHealth
from aifactory.storage import BlobStore, StorageConfig
from aifactory.transports import InProcessWorkerTransport
from aifactory.workers import WorkerHost
from tests.orchestrator.harness import Step

pytestmark = pytest.mark.anyio


class Probed(InProcessWorkerTransport):
    def __init__(self, host: WorkerHost, healthy: bool = True, free: int | None = None) -> None:
        super().__init__(host)
        self.checks = 0
        self.healthy = healthy
        self.free = free

    async def health(self) -> WorkerHealth:
        self.checks += 1
        health = await super().health()
        free = health.slots_free if self.free is None else self.free
        return attrs.evolve(health, healthy=self.healthy, slots_free=free)


def _endpoint(**kw: object) -> Probed:
    blobs = BlobStore(StorageConfig.memory(), ManualClock())
    return Probed(WorkerHost(Step("w"), blobs, ManualClock(), SequentialIds()), **kw)  # type: ignore[arg-type]


async def test_health_is_cached_for_its_ttl() -> None:
    endpoint = _endpoint()
    registry = WorkerRegistry([endpoint], health_ttl_s=0.2)
    for _ in range(5):
        assert await registry.candidates("w") == [endpoint]
    assert endpoint.checks == 1
    await anyio.sleep(0.25)
    await registry.candidates("w")
    assert endpoint.checks == 2


async def test_unhealthy_endpoints_are_left_out_and_full_ones_go_last() -> None:
    sick, full, free = _endpoint(healthy=False), _endpoint(free=0), _endpoint(free=3)
    registry = WorkerRegistry([sick, full, free])
    for _ in range(3):  # whatever the rotation
        assert await registry.candidates("w") == [free, full]
    assert await registry.candidates("w", avoid=[free]) == [full, free]
    registry.mark_unhealthy(free)
    assert await registry.candidates("w") == [full]


async def test_missing_workers_are_named() -> None:
    registry = WorkerRegistry([_endpoint()])
    with pytest.raises(WorkerError, match="no worker registered for a_b, x"):
        registry.require(["w", "x", "a_b"])
    with pytest.raises(Exception, match="snake_case"):
        registry.add(type("T", (), {"worker": "content-granulator"})())  # type: ignore[arg-type]


class Unreachable(Probed):
    """An endpoint whose health check fails while `down` is set."""

    down = False

    async def health(self) -> WorkerHealth:
        if self.down:
            raise ConnectionFailedError("connection refused")
        return await super().health()


async def test_the_staff_view_says_when_an_endpoint_was_last_seen_and_how_often_it_failed() -> None:
    clock = ManualClock()
    blobs = BlobStore(StorageConfig.memory(), clock)
    endpoint = Unreachable(WorkerHost(Step("w"), blobs, clock, SequentialIds()))
    registry = WorkerRegistry([endpoint], health_ttl_s=0, retry_unhealthy_s=0, clock=clock)
    [never] = await registry.status()  # its first health check happens now
    assert (never.last_seen, never.failures, never.last_failure) == (clock.now(), 0, None)
    first_seen = clock.now()
    clock.advance(60)
    endpoint.down = True
    [down] = await registry.status()
    assert (down.state, down.last_seen, down.failures) == ("unreachable", first_seen, 1)
    assert down.last_failure == clock.now()
    clock.advance(60)
    registry.mark_unhealthy(endpoint)  # a handshake could not reach it
    failed_at = clock.now()
    clock.advance(60)
    endpoint.down = False
    registry.seen(endpoint)  # a handshake answered
    [back] = await registry.status()
    assert (back.state, back.last_seen, back.failures) == ("ready", clock.now(), 2)
    assert back.last_failure == failed_at
