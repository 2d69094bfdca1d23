"""A client following an execution over HTTP keeps following across a restart of the server
(the execution interrupted, then resumed by an admin), instead of failing on the outage."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from aifactory import AsyncFactory, RandomIds
from aifactory._embedded import EmbeddedFactory
from aifactory.models import ExecutionStatus
from aifactory.server import serving
from aifactory.workers import ContentGranulator, ReportBuilder, WorkerContext, WorkerResult
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, fast_config
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio


class _Stuck(ReportBuilder):
    """A report builder that never finishes: the server is stopped mid-stage."""

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


def _server(home: Path, report: ReportBuilder, port: int = 0) -> tuple[EmbeddedFactory, Any]:
    config = fast_config(home, workers=[ContentGranulator(), report], ids=RandomIds())
    runtime = EmbeddedFactory(config)
    return runtime, UvicornThread(serving(runtime), port=port)


async def test_following_an_execution_outlasts_a_server_restart(tmp_path: Path) -> None:
    first, server = _server(tmp_path, _Stuck())
    password = await first.accounts.bootstrap_admin(ADMIN)
    await anyio.to_thread.run_sync(server.start)
    restarted: Any = None
    try:
        async with AsyncFactory.connect(server.url) as factory:
            # Short long polls: stopping the server waits for the one in flight.
            factory._transport.long_poll_s = 1.0
            admin = await factory.login(ADMIN, password, login_type="admin")
            acme = await admin.clients.create(name="Acme", tier="standard", monthly_budget_usd=50)
            await admin.users.create(
                email=ANA, password=ANA_PASSWORD, role="client", client_id=acme.id
            )
            ana = await factory.login(ANA, ANA_PASSWORD)
            request = await ana.requests.create(title="Market analysis for AI tools")
            await admin.requests.assign_template(request.id, "quick_research")
            execution = await admin.requests.execute(request.id)
            kinds: list[tuple[str, str | None]] = []
            report_started = anyio.Event()

            async def follow() -> None:
                async for event in ana.executions.events(execution.id):
                    kinds.append((event.kind, event.stage_id))
                    if event.kind == "stage.started" and event.stage_id == "report":
                        report_started.set()

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(follow)
                    await report_started.wait()
                    # The server goes away mid-stage (its execution interrupted) and stays
                    # away longer than the transport's own quick reconnects.
                    await anyio.to_thread.run_sync(server.stop)
                    await anyio.sleep(1.5)
                    _, restarted = _server(tmp_path, ReportBuilder(), port=server.port)
                    # Restarted, the factory resumes the execution by itself; following it
                    # ends when it completes.
                    await anyio.to_thread.run_sync(restarted.start)
            final = await ana.executions.get(execution.id)
    finally:
        if restarted is not None:
            await anyio.to_thread.run_sync(restarted.stop)
    assert final.status is ExecutionStatus.COMPLETED
    assert ("execution.resumed", None) in kinds
    assert kinds[-1] == ("execution.completed", None)
    assert kinds.count(("stage.succeeded", "outline")) == 1
