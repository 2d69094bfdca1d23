"""One of several processes executing requests against one client's budget at once; see
`test_budget.py`.

`python -m tests.kam.budget_child HOME STATE ADMIN_PASSWORD REQUEST_ID...` opens the factory
kept at HOME (STATE: a PostgreSQL URL, or `-` for the home's SQLite file), executes every
request at once, prints `admitted <ids>` and then waits, its executions stuck in their first
stage, until it is killed.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

import aifactory
from aifactory import AsyncFactory, QuotaExceededError
from aifactory.workers import ContentGranulator, ReportBuilder, WorkerContext, WorkerResult
from tests.helpers import ADMIN, fast_config


class Stuck(ContentGranulator):
    """Never finishes: the process is killed mid-stage."""

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def main(home: Path, state: str | None, password: str, request_ids: list[str]) -> None:
    config = fast_config(
        home, workers=[Stuck(), ReportBuilder()], ids=aifactory.RandomIds(), state_url=state
    )
    async with AsyncFactory.embedded(config=config) as factory:
        admin = await factory.login(ADMIN, password, login_type="admin")
        admitted: list[str] = []

        async def execute(request_id: str) -> None:
            with contextlib.suppress(QuotaExceededError):
                admitted.append((await admin.requests.execute(request_id)).id)

        async with anyio.create_task_group() as tg:
            for request_id in request_ids:
                tg.start_soon(execute, request_id)
        print("admitted", *admitted, flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    home, state, password, *ids = sys.argv[1:]
    anyio.run(main, Path(home), None if state == "-" else state, password, ids)
