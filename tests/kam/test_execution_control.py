"""Budgets held per stage, tier concurrency, cancel, retry and metrics, through the client."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

import anyio
import pytest

from aifactory import (
    AsyncFactory,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    StorageError,
)
from aifactory.models import ExecutionStatus, RequestStatus, StageStatus
from aifactory.orchestrator import ExecutionReport, RetryPolicy
from aifactory.protocol import ResourceEstimate
from aifactory.workers import ContentGranulator, ReportBuilder, WorkerContext, WorkerResult
from tests.helpers import (
    ADMIN,
    ANA,
    ANA_PASSWORD,
    BOB,
    BOB_PASSWORD,
    People,
    fast_config,
    setup_people,
)

pytestmark = pytest.mark.anyio


class Gated(ContentGranulator):
    """A granulator that waits for the test's signal, with a configurable estimate."""

    gate: ClassVar[anyio.Event | None] = None
    started: ClassVar[anyio.Event | None] = None
    estimate_usd: ClassVar[Decimal] = Decimal(0)
    failures: ClassVar[int] = 0
    calls: ClassVar[int] = 0

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        return ResourceEstimate(cost_usd=type(self).estimate_usd)

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        cls = type(self)
        cls.calls += 1
        if cls.started is not None:
            cls.started.set()
        if cls.gate is not None:
            await cls.gate.wait()
        if cls.calls <= cls.failures:
            from aifactory import StageFailedError

            raise StageFailedError("the model is down")
        return await super().process(action, inputs, params, ctx)


@pytest.fixture(autouse=True)
def _reset() -> None:
    Gated.gate = Gated.started = None
    Gated.estimate_usd = Decimal(0)
    Gated.failures = Gated.calls = 0


def _config() -> Any:
    return fast_config(
        workers=[Gated(), ReportBuilder()],
        retry=RetryPolicy(initial_interval_s=0, maximum_attempts=1),
    )


async def _request(people: People) -> str:
    request = await people.ana.requests.create(title="Market analysis for AI tools")
    await people.admin.requests.assign_template(request.id, "quick_research")
    return request.id


async def test_a_stage_estimate_over_budget_is_refused_before_processing() -> None:
    Gated.estimate_usd = Decimal("60")
    async with AsyncFactory.embedded(config=_config()) as factory:
        people = await setup_people(factory, budget=50)
        request_id = await _request(people)
        execution = await people.admin.requests.execute(request_id)
        final = await people.admin.executions.wait(execution.id)
        assert final.status is ExecutionStatus.FAILED
        assert "only 50" in (final.error or "")
        assert Gated.calls == 0  # refused at reservation, before any work
        request = await people.ana.requests.get(request_id)
        assert request.status is RequestStatus.FAILED
        client = await people.admin.clients.get(people.client_id)
        assert client.used_this_month_usd == 0
        runtime = factory._runtime
        assert runtime is not None
        assert await runtime.store.reserved_usd(people.client_id) == 0


async def test_the_tier_limits_concurrent_executions() -> None:
    async with AsyncFactory.embedded(config=_config()) as factory:
        people = await setup_people(factory, tier="basic", budget=5)
        Gated.gate, Gated.started = anyio.Event(), anyio.Event()
        first = await people.admin.requests.execute(await _request(people))
        await Gated.started.wait()
        second = await _request(people)
        with pytest.raises(QuotaExceededError, match="1 execution"):
            await people.admin.requests.execute(second)
        Gated.gate.set()
        await people.admin.executions.wait(first.id)
        await people.admin.requests.execute(second)  # a slot is free again


async def test_a_client_cancels_its_own_execution_and_nobody_else_can() -> None:
    async with AsyncFactory.embedded(config=_config()) as factory:
        people = await setup_people(factory)
        globex = await people.admin.clients.create(
            name="Globex", tier="basic", monthly_budget_usd=5
        )
        await people.admin.users.create(email=BOB, password=BOB_PASSWORD, client_id=globex.id)
        bob = await factory.login(BOB, BOB_PASSWORD)
        Gated.gate, Gated.started = anyio.Event(), anyio.Event()
        request_id = await _request(people)
        execution = await people.admin.requests.execute(request_id)
        await Gated.started.wait()
        with pytest.raises(NotFoundError):
            await bob.executions.cancel(execution.id)
        cancelled = await people.ana.executions.cancel(execution.id)
        assert cancelled.status is ExecutionStatus.CANCELLED
        assert (await people.ana.requests.get(request_id)).status is RequestStatus.CANCELLED
        stages = {s.stage_id: s.status for s in await people.ana.executions.stages(execution.id)}
        assert stages == {"outline": StageStatus.CANCELLED, "report": StageStatus.SKIPPED}
        [note] = await people.ana.notifications.list()
        assert note.kind == "request.cancelled"


async def test_retry_finishes_a_failed_execution_reusing_what_it_committed() -> None:
    async with AsyncFactory.embedded(config=_config()) as factory:
        people = await setup_people(factory)
        Gated.failures = 1
        request_id = await _request(people)
        execution = await people.admin.requests.execute(request_id)
        failed = await people.admin.executions.wait(execution.id)
        assert failed.status is ExecutionStatus.FAILED
        assert (await people.ana.requests.get(request_id)).status is RequestStatus.FAILED
        await people.admin.executions.retry(execution.id)
        done = await people.admin.executions.wait(execution.id)
        assert done.status is ExecutionStatus.COMPLETED
        assert done.runs == 2
        assert (await people.ana.requests.get(request_id)).status is RequestStatus.COMPLETED
        assert len(await people.ana.deliverables.list(request_id)) == 1
        client = await people.admin.clients.get(people.client_id)
        assert client.used_this_month_usd == done.cost.total_usd  # charged the difference once

        metrics = await people.ana.executions.metrics(execution.id)
        assert metrics["runs"] == 2
        outline = metrics["stages"][0]
        assert outline["stage_id"] == "outline"
        assert outline["attempts"] == 2
        assert outline["bytes_stored"] > 0
        assert Decimal(metrics["cost_usd"]) == done.cost.total_usd


async def test_bad_resources_are_refused() -> None:
    async with AsyncFactory.embedded(config=_config()) as factory:
        people = await setup_people(factory)
        request_id = await _request(people)
        from aifactory import BadInputError

        for resources in ({"max_workers": 0}, {"timeout_ms": "soon"}, {"gpus": 1}, {"cache": 1}):
            with pytest.raises(BadInputError):
                await people.admin.requests.execute(request_id, resources=resources)


async def test_retention_keeps_deliverables_and_metrics_of_what_it_prunes() -> None:
    config = _config()
    async with AsyncFactory.embedded(config=config) as factory:
        people = await setup_people(factory)
        request_id = await _request(people)
        execution = await people.admin.requests.execute(request_id)
        done = await people.admin.executions.wait(execution.id)
        assert done.status is ExecutionStatus.COMPLETED
        (deliverable,) = await people.ana.deliverables.list(request_id)
        report = await people.ana.deliverables.download(deliverable.id)
        metrics = await people.ana.executions.metrics(execution.id)
        config.clock.advance(timedelta(days=40))
        admin = await factory.login(ADMIN, people.admin_password, login_type="admin")
        ana = await factory.login(ANA, ANA_PASSWORD)

        with pytest.raises(PermissionDeniedError):
            await ana.executions.prune(older_than_days=30)
        counts = await admin.executions.prune(older_than_days=30)

        assert counts["stage_data"] == 2
        assert counts["events"] > 0
        stages = await ana.executions.stages(execution.id)
        assert [(s.input_ref, s.output_ref) for s in stages] == [(None, None)] * 2
        assert await ana.deliverables.download(deliverable.id) == report
        assert await ana.executions.metrics(execution.id) == metrics
        assert (await ana.requests.get(request_id)).status is RequestStatus.COMPLETED


async def test_resume_settles_an_execution_whose_settling_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config()
    async with AsyncFactory.embedded(config=config) as factory:
        people = await setup_people(factory)
        runtime = factory._runtime
        assert runtime is not None
        settle = runtime.settlement.execution_finished
        failures = [StorageError("database is locked")]

        async def flaky(report: ExecutionReport) -> None:
            if failures:
                raise failures.pop()
            await settle(report)

        monkeypatch.setattr(runtime.settlement, "execution_finished", flaky)
        request_id = await _request(people)
        execution = await people.admin.requests.execute(request_id)
        done = await people.admin.executions.wait(execution.id)
        # Committed as completed, but the request was never settled: no deliverable yet.
        assert done.status is ExecutionStatus.COMPLETED
        assert (await people.ana.requests.get(request_id)).status is RequestStatus.EXECUTING
        assert await people.ana.deliverables.list(request_id) == []
        kinds = [e.kind for e in await runtime.store.list_events(execution.id)]
        assert kinds[-1] == "execution.finish_failed"
        # Long after, retention leaves its stage data alone: its deliverables come from it.
        config.clock.advance(timedelta(days=40))
        admin = await factory.login(ADMIN, people.admin_password, login_type="admin")
        ana = await factory.login(ANA, ANA_PASSWORD)
        assert (await admin.executions.prune(older_than_days=30))["stage_data"] == 0

        resumed = await admin.executions.resume(execution.id)

        assert resumed.status is ExecutionStatus.COMPLETED
        assert (await ana.requests.get(request_id)).status is RequestStatus.COMPLETED
        [deliverable] = await ana.deliverables.list(request_id)
        assert (await ana.deliverables.download(deliverable.id)).startswith(b"# ")
        client = await admin.clients.get(people.client_id)
        assert client.used_this_month_usd == done.cost.total_usd
        with pytest.raises(ConflictError, match="already completed"):
            await admin.executions.resume(execution.id)  # settled: nothing to resume
        assert (await admin.executions.prune(older_than_days=30))["stage_data"] == 2
