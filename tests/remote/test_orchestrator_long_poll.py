"""The orchestrator service answers the KAM's long poll for an execution's news as soon as it
has some (`POST /api/pipelines/executions/{id}/changed`), instead of the KAM polling."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import pytest

from aifactory import BadInputError
from aifactory.auth.signing import generate_worker_key
from aifactory.models import StageSpec, Template, Tier
from aifactory.protocol.codec import unstructure
from aifactory.protocol.messages import StageSummary
from aifactory.server.deploy import Deployment, orchestrator_service
from aifactory.server.services import ServiceClient
from aifactory.state.sqlite import SQLiteStore
from aifactory.workers import Worker, WorkerContext, WorkerInfo, WorkerResult
from tests.helpers import fast_config
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio


class Gated(Worker):
    """Waits until the test opens its gate (the worker runs on the server's thread)."""

    info: ClassVar[WorkerInfo] = WorkerInfo(name="gated", description="test", actions=("wait",))
    gate: ClassVar[threading.Event] = threading.Event()
    started: ClassVar[threading.Event] = threading.Event()

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        self.started.set()
        await anyio.to_thread.run_sync(self.gate.wait, 30)
        return WorkerResult(output={"done": True}, summary=StageSummary(method="test"))


def _template() -> dict[str, Any]:
    stage = StageSpec(id="only", worker="gated", action="wait")
    return unstructure(Template("gated", "Gated", "", "test", tuple(Tier), (stage,)))


async def _last_seq(home: Path, execution_id: str) -> int:
    store = SQLiteStore(home / "state.sqlite3")
    try:
        return await store.last_event_seq(execution_id)
    finally:
        await store.aclose()


async def test_the_long_poll_waits_for_news_and_answers_when_it_comes(tmp_path: Path) -> None:
    Gated.gate.clear()
    Gated.started.clear()
    kam_key, orch_key = generate_worker_key("kam"), generate_worker_key("orchestrator")
    config = fast_config(tmp_path, workers=[Gated()])
    # The KAM URL is never called before the execution ends, and it ends after the test.
    app = orchestrator_service(
        config, Deployment(orch_key, (), (kam_key,), kam_url="http://127.0.0.1:9")
    )
    with UvicornThread(app) as server:
        kam = ServiceClient(server.url, kam_key)
        try:
            started = await kam.post("/api/pipelines/execute", {"template": _template()})
            execution_id = started["execution_id"]
            path = f"/api/pipelines/executions/{execution_id}/changed"
            # Processing: the execution's start and the stage's attempt are recorded.
            assert await anyio.to_thread.run_sync(Gated.started.wait, 10)
            seen = await _last_seq(tmp_path, execution_id)

            # Nothing new while the stage waits: the call is still waiting half a second on.
            with anyio.move_on_after(0.5) as waited:
                await kam.post(path, {"after": seen, "wait_s": 20})
            assert waited.cancelled_caught

            # News comes: the waiting call answers (long before its 20 s).
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(kam.post, path, {"after": seen, "wait_s": 20})
                    await anyio.sleep(0.1)
                    Gated.gate.set()
            assert await _last_seq(tmp_path, execution_id) > seen

            # Already news after `after`: answered at once.
            with anyio.fail_after(5):
                await kam.post(path, {"after": 0, "wait_s": 20})
            for bad in ({"after": -1}, {"after": "1"}, {"wait_s": -1}, {"wait_s": True}):
                with pytest.raises(BadInputError):
                    await kam.post(path, bad)
        finally:
            Gated.gate.set()
            await kam.aclose()
