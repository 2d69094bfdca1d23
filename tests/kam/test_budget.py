"""Budgets that hold: admission is one transaction, so concurrent executes never admit more
than the client's budget covers, and nothing stays held once executions settle."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from subprocess import Popen
from typing import Any

import anyio
import anyio.to_thread
import pytest

import aifactory
from aifactory import AsyncFactory, QuotaExceededError
from aifactory._embedded import EmbeddedFactory
from aifactory.models import ExecutionStatus, RequestStatus
from aifactory.workers import ContentGranulator, ReportBuilder, WorkerContext, WorkerResult
from tests.helpers import ADMIN, fast_config, setup_people

ROOT = Path(__file__).resolve().parents[2]

#: quick_research's estimate is 0.05 USD: a 0.20 budget fits exactly four executions.
BUDGET = Decimal("0.20")
FITS = 4
EXECUTES = 50


class _Gated(ContentGranulator):
    """A granulator that waits for the test's gate, so that no admitted execution finishes
    (and gives its hold back) while the others are still being admitted."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        await anyio.to_thread.run_sync(self.gate.wait, abandon_on_cancel=True)
        return await super().process(action, inputs, params, ctx)


def _config(gate: threading.Event) -> aifactory.FactoryConfig:
    return fast_config(workers=[_Gated(gate), ReportBuilder()])


async def _settled_budget(runtime: EmbeddedFactory | None, client_id: str) -> Decimal:
    assert runtime is not None
    return await runtime.store.reserved_usd(client_id)


@pytest.mark.anyio
async def test_concurrent_executes_admit_exactly_what_the_budget_covers() -> None:
    gate = threading.Event()
    async with AsyncFactory.embedded(config=_config(gate)) as factory:
        people = await setup_people(factory, tier="enterprise", budget=BUDGET)
        request_ids = []
        for n in range(EXECUTES):
            request = await people.ana.requests.create(title=f"Market analysis {n}")
            await people.admin.requests.assign_template(request.id, "quick_research")
            request_ids.append(request.id)

        admitted: list[str] = []
        refused: list[QuotaExceededError] = []

        async def execute(request_id: str) -> None:
            try:
                admitted.append((await people.admin.requests.execute(request_id)).id)
            except QuotaExceededError as exc:
                refused.append(exc)

        async with anyio.create_task_group() as tg:
            for request_id in request_ids:
                tg.start_soon(execute, request_id)

        assert len(admitted) == FITS
        assert len(refused) == EXECUTES - FITS
        assert all(e.details["reason"] == "budget" for e in refused)
        assert all("exceeds the remaining budget 0" in e.message for e in refused)
        assert await _settled_budget(factory._runtime, people.client_id) == FITS * Decimal("0.05")
        # A refused request is as it was: assigned, never executed.
        statuses = [(await people.ana.requests.get(r)).status for r in request_ids]
        assert statuses.count(RequestStatus.EXECUTING) == FITS
        assert statuses.count(RequestStatus.TEMPLATE_ASSIGNED) == EXECUTES - FITS

        gate.set()
        for execution_id in admitted:
            final = await people.admin.executions.wait(execution_id)
            assert final.status is ExecutionStatus.COMPLETED
        client = await people.admin.clients.get(people.client_id)
        assert 0 < client.used_this_month_usd <= BUDGET
        assert await _settled_budget(factory._runtime, people.client_id) == 0
        refusals = [
            e
            for e in await people.admin.audit.list(limit=1000)
            if e.action == "request.execute" and e.outcome == "refused"
        ]
        assert len(refusals) == EXECUTES - FITS


def test_concurrent_executes_from_threads_on_the_sync_facade() -> None:
    gate = threading.Event()
    with aifactory.embedded(config=_config(gate)) as factory:
        password = factory.bootstrap_admin("admin@factory.example")
        admin = factory.login("admin@factory.example", password, login_type="admin")
        client = admin.clients.create(name="Acme", tier="enterprise", monthly_budget_usd=BUDGET)
        request_ids = []
        for n in range(EXECUTES):
            request = admin.requests.create(title=f"Outlook {n}", client_id=client.id)
            admin.requests.assign_template(request.id, "quick_research")
            request_ids.append(request.id)

        def execute(request_id: str) -> str | None:
            try:
                return admin.requests.execute(request_id).id
            except QuotaExceededError:
                return None

        with ThreadPoolExecutor(max_workers=EXECUTES) as pool:
            outcomes = list(pool.map(execute, request_ids))
        admitted = [o for o in outcomes if o is not None]
        assert len(admitted) == FITS

        gate.set()
        for execution_id in admitted:
            assert admin.executions.wait(execution_id).status is ExecutionStatus.COMPLETED
        assert admin.clients.get(client.id).used_this_month_usd <= BUDGET


@pytest.mark.anyio
async def test_a_failed_or_cancelled_execution_gives_its_hold_back() -> None:
    gate = threading.Event()
    async with AsyncFactory.embedded(config=_config(gate)) as factory:
        people = await setup_people(factory, tier="enterprise", budget=Decimal("0.05"))
        first = await people.ana.requests.create(title="First")
        await people.admin.requests.assign_template(first.id, "quick_research")
        execution = await people.admin.requests.execute(first.id)
        second = await people.ana.requests.create(title="Second")
        await people.admin.requests.assign_template(second.id, "quick_research")
        with pytest.raises(QuotaExceededError):
            await people.admin.requests.execute(second.id)

        await people.admin.executions.cancel(execution.id)
        gate.set()
        final = await people.admin.executions.wait(execution.id)
        assert final.status is ExecutionStatus.CANCELLED
        assert await _settled_budget(factory._runtime, people.client_id) == 0
        # What the cancelled one held is free again.
        again = await people.admin.requests.execute(second.id)
        assert (await people.admin.executions.wait(again.id)).status is ExecutionStatus.COMPLETED
        assert await _settled_budget(factory._runtime, people.client_id) == 0

        # A retry is admitted again: the second one's cost leaves less than the estimate.
        with pytest.raises(QuotaExceededError):
            await people.admin.executions.retry(execution.id)


@pytest.mark.anyio
async def test_the_tier_concurrency_limit_is_admitted_atomically_too() -> None:
    gate = threading.Event()
    async with AsyncFactory.embedded(config=_config(gate)) as factory:
        people = await setup_people(factory, tier="basic", budget=Decimal(5))
        request_ids = []
        for n in range(10):
            request = await people.ana.requests.create(title=f"Request {n}")
            await people.admin.requests.assign_template(request.id, "quick_research")
            request_ids.append(request.id)
        reasons: list[str] = []

        async def execute(request_id: str) -> None:
            try:
                await people.admin.requests.execute(request_id)
            except QuotaExceededError as exc:
                reasons.append(exc.details["reason"])

        async with anyio.create_task_group() as tg:
            for request_id in request_ids:
                tg.start_soon(execute, request_id)
        assert reasons == ["concurrency"] * 9  # the basic tier runs one at a time
        gate.set()


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest) -> str | None:
    """Where the processes keep their state: the home's SQLite file, or a PostgreSQL schema."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


def _start_child(home: Path, state: str | None, password: str, ids: list[str]) -> Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.kam.budget_child", str(home), state or "-", password, *ids],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_processes_sharing_a_database_admit_exactly_what_fits_and_leak_nothing_when_killed(
    tmp_path: Path, state: str | None
) -> None:
    config = fast_config(tmp_path, ids=aifactory.RandomIds(), state_url=state)
    async with AsyncFactory.embedded(config=config) as factory:
        people = await setup_people(factory, tier="enterprise", budget=BUDGET)
        request_ids = []
        for n in range(EXECUTES):
            request = await people.ana.requests.create(title=f"Market analysis {n}")
            await people.admin.requests.assign_template(request.id, "quick_research")
            request_ids.append(request.id)

    half = EXECUTES // 2
    children = [
        _start_child(tmp_path, state, people.admin_password, request_ids[:half]),
        _start_child(tmp_path, state, people.admin_password, request_ids[half:]),
    ]
    admitted: list[str] = []
    try:
        for child in children:
            assert child.stdout is not None
            line = await anyio.to_thread.run_sync(child.stdout.readline)
            assert line.startswith("admitted"), child.stderr.read() if child.stderr else line
            admitted += line.split()[1:]
    finally:
        for child in children:  # mid-run: every admitted execution is in its first stage
            child.send_signal(signal.SIGKILL)
            child.wait()
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
    assert len(admitted) == FITS

    # Reopened with workers that finish, the factory resumes what the killed processes left
    # running; once all has settled, nothing is held and the month stays within the budget.
    healthy = fast_config(tmp_path, ids=aifactory.RandomIds(), state_url=state)
    async with AsyncFactory.embedded(config=healthy) as factory:
        admin = await factory.login(ADMIN, people.admin_password, login_type="admin")
        for execution_id in admitted:
            with anyio.fail_after(60):
                final = await admin.executions.wait(execution_id)
            assert final.status is ExecutionStatus.COMPLETED
        assert (await admin.clients.get(people.client_id)).used_this_month_usd <= BUDGET
        assert await _settled_budget(factory._runtime, people.client_id) == 0
