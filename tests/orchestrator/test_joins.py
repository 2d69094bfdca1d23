"""A stage made ready while another branch's commit is in flight starts once: the commit
that records its first attempt is still in flight when the other branch schedules, and that
branch must see the stage as taken, not start a second attempt of it."""

from __future__ import annotations

import anyio
import pytest

from aifactory.models import ExecutionStatus, StageStatus
from aifactory.protocol.messages import AcknowledgeReply, AcknowledgeRequest
from aifactory.state import ExecutionWrite
from aifactory.transports import InProcessWorkerTransport
from aifactory.workers import WorkerHost
from tests.orchestrator.harness import Harness, Step, stage, template

pytestmark = pytest.mark.anyio


class HeldAcknowledge(InProcessWorkerTransport):
    """A local endpoint (acknowledged in line, before its stage's task schedules again).
    Once `armed`, its acknowledge of stage `a` lets `b` finish (opens `b_gate`) and returns
    only when `b`'s commit is in flight (`b_committing`)."""

    def __init__(self, host: WorkerHost) -> None:
        super().__init__(host)
        self.armed = False
        self.b_gate, self.b_committing, self.returned = anyio.Event(), anyio.Event(), anyio.Event()

    async def acknowledge(self, request: AcknowledgeRequest) -> AcknowledgeReply:
        reply = await super().acknowledge(request)
        if self.armed and request.stage_id == "a":
            self.b_gate.set()
            with anyio.fail_after(5):
                await self.b_committing.wait()
            self.returned.set()  # from here to its scheduling, `a`'s task does not pause
        return reply


async def test_a_stage_made_ready_during_another_branchs_commit_starts_once() -> None:
    b, c = Step("wb"), Step("wc")
    h = Harness([b, c])
    a_endpoint = HeldAcknowledge(WorkerHost(Step("wa"), h.blobs, h.clock, h.ids))
    h.registry.add(a_endpoint)
    # `c` needs only `a`; `b` runs beside them.
    tpl = template(stage("a", "wa"), stage("b", "wb"), stage("c", "wc", "a"))
    with anyio.fail_after(10):
        # A first run, so that the workers are known: only then does a commit record the
        # next stage's first attempt. Its parameters keep the second run out of the cache.
        assert (await h.run(tpl, {"run": 1})).status is ExecutionStatus.COMPLETED

    record = h.store.record

    async def held_record(write: ExecutionWrite) -> None:
        done = write.finished
        if done is not None and done.stage_id == "b" and done.status is StageStatus.SUCCEEDED:
            # `b`'s commit, which makes `c` ready and records its first attempt, is held
            # until `a`'s task has scheduled.
            a_endpoint.b_committing.set()
            with anyio.fail_after(5):
                await a_endpoint.returned.wait()
        await record(write)

    h.store.record = held_record  # type: ignore[method-assign]
    a_endpoint.armed, b.gate = True, a_endpoint.b_gate  # `b` finishes after `a` committed
    c.calls.clear()
    with anyio.fail_after(10):
        done = await h.run(tpl, {"run": 2})
    assert a_endpoint.returned.is_set()  # the race was set up
    assert done.status is ExecutionStatus.COMPLETED, done.error
    assert c.calls == [1]
    runs = {r.stage_id: (r.status, r.attempt) for r in await h.store.get_stage_runs(done.id)}
    assert runs["c"] == (StageStatus.SUCCEEDED, 1)
    assert [s for k, s in await h.kinds(done.id) if k == "stage.started"].count("c") == 1
