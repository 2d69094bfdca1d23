"""Acknowledges to endpoints outside the process travel alongside the next stages' calls: a
round trip nothing waits for is off the pipeline's path, and the run still ends only once
every acknowledge has been answered."""

from __future__ import annotations

import anyio
import pytest

from aifactory import TransportError
from aifactory.models import ExecutionStatus, StageStatus
from aifactory.protocol.messages import (
    AcknowledgeReply,
    AcknowledgeRequest,
    HandshakeReply,
    HandshakeRequest,
)
from aifactory.transports import InProcessWorkerTransport
from aifactory.workers import WorkerHost
from tests.orchestrator.harness import Harness, Step, stage, template

pytestmark = pytest.mark.anyio

ORDER = ("a", "b", "c")


class Distant(InProcessWorkerTransport):
    """An endpoint that says it is remote, and holds each stage's acknowledge until the next
    stage's handshake has arrived: acknowledged in line, the pipeline would wait forever."""

    def __init__(self, host: WorkerHost, log: list[str], seen: dict[str, anyio.Event]) -> None:
        super().__init__(host)
        self.log, self.seen = log, seen

    @property
    def local(self) -> bool:
        return False

    async def handshake(self, request: HandshakeRequest) -> HandshakeReply:
        self.log.append(f"handshake {request.stage_id}")
        self.seen[request.stage_id].set()
        return await super().handshake(request)

    async def acknowledge(self, request: AcknowledgeRequest) -> AcknowledgeReply:
        index = ORDER.index(request.stage_id)
        if index + 1 < len(ORDER):
            with anyio.fail_after(5):
                await self.seen[ORDER[index + 1]].wait()
        reply = await super().acknowledge(request)
        self.log.append(f"acknowledged {request.stage_id}")
        return reply


async def test_remote_acknowledges_do_not_hold_up_the_next_stage() -> None:
    h = Harness([])
    log: list[str] = []
    seen = {sid: anyio.Event() for sid in ORDER}
    h.registry.add(Distant(WorkerHost(Step("w"), h.blobs, h.clock, h.ids), log, seen))
    tpl = template(stage("a", "w"), stage("b", "w", "a"), stage("c", "w", "b"))
    with anyio.fail_after(10):
        done = await h.run(tpl)
    assert done.status is ExecutionStatus.COMPLETED
    assert log.index("handshake b") < log.index("acknowledged a")
    assert log.index("handshake c") < log.index("acknowledged b")
    # The run ended once every acknowledge was answered, not before.
    assert sorted(entry for entry in log if entry.startswith("acknowledged")) == [
        f"acknowledged {sid}" for sid in ORDER
    ]
    assert [e for e in await h.kinds(done.id) if e[0] == "stage.acknowledge_failed"] == []


class Unreachable(InProcessWorkerTransport):
    """A remote-looking endpoint whose acknowledges never arrive."""

    @property
    def local(self) -> bool:
        return False

    async def acknowledge(self, request: AcknowledgeRequest) -> AcknowledgeReply:
        raise TransportError(f"the worker went away before acknowledging {request.stage_id}")


async def test_a_lost_acknowledge_is_recorded_and_the_execution_completes() -> None:
    h = Harness([])
    h.registry.add(Unreachable(WorkerHost(Step("w"), h.blobs, h.clock, h.ids)))
    with anyio.fail_after(10):
        done = await h.run(template(stage("a", "w"), stage("b", "w", "a")))
    # The stages were committed before their acknowledges: losing those changes nothing.
    assert done.status is ExecutionStatus.COMPLETED
    lost = [e for e in await h.store.list_events(done.id) if e.kind == "stage.acknowledge_failed"]
    assert sorted(e.stage_id or "" for e in lost) == ["a", "b"]
    assert all("went away" in e.data["error"] for e in lost)


class Broken(InProcessWorkerTransport):
    """An endpoint whose acknowledge fails with a plain bug, in line or alongside."""

    def __init__(self, host: WorkerHost, remote: bool) -> None:
        super().__init__(host)
        self.remote = remote

    @property
    def local(self) -> bool:
        return not self.remote

    async def acknowledge(self, request: AcknowledgeRequest) -> AcknowledgeReply:
        raise RuntimeError("a bug in the transport")


@pytest.mark.parametrize("remote", [False, True])
async def test_an_acknowledge_that_breaks_does_not_undo_a_committed_stage(remote: bool) -> None:
    h = Harness([])
    h.registry.add(Broken(WorkerHost(Step("w"), h.blobs, h.clock, h.ids), remote))
    with anyio.fail_after(10):
        done = await h.run(template(stage("a", "w"), stage("b", "w", "a")))
    assert done.status is ExecutionStatus.COMPLETED
    runs = {r.stage_id: r.status for r in await h.store.get_stage_runs(done.id)}
    assert set(runs.values()) == {StageStatus.SUCCEEDED}
    lost = [e for e in await h.store.list_events(done.id) if e.kind == "stage.acknowledge_failed"]
    assert [e.data["error"] for e in lost] == ["RuntimeError('a bug in the transport')"] * 2
