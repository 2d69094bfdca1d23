"""Factory-wide metrics against the known truth of a mixed workload: two clients, two
templates, successes, a failure, a retry and a cancellation, on a manual clock that only the
test's workers move, so every duration is known to the millisecond."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

import anyio
import attrs
import pytest

from aifactory import (
    AsyncFactory,
    AsyncSession,
    BadInputError,
    PermissionDeniedError,
    StageFailedError,
)
from aifactory._clock import ManualClock
from aifactory._embedded import EmbeddedFactory
from aifactory.kam.metrics import metrics_lines, parse_since, percentile
from aifactory.models import (
    Cost,
    ExecutionStatus,
    MetricsLine,
    MetricsReport,
    ParameterSpec,
    Usage,
)
from aifactory.protocol import ResourceEstimate, StageSummary
from aifactory.server import serving
from aifactory.transports.factory import InProcessFactoryTransport
from aifactory.workers import Worker, WorkerContext, WorkerInfo, WorkerResult
from tests.helpers import ADMIN, fast_config
from tests.orchestrator.harness import stage, template
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio

ARTIFACT = b"x" * 100


class Timed(Worker):
    """Moves the manual clock by `queue_s` while it is offered a stage (the handshake) and by
    `work_s` while it works; fails its first `fail_times` attempts (and, writing an
    `artifact`, every one asked to `fail`); reports one model call of 100 + 50 tokens and
    $0.01; may write an artifact; told to `hold`, works until cancelled (`started` is set
    once it works: it may run in a server's thread)."""

    def __init__(
        self,
        name: str,
        clock: ManualClock,
        *,
        queue_s: float,
        work_s: float,
        fail_times: int = 0,
        artifact: bool = False,
    ) -> None:
        self.info = WorkerInfo(name=name, description="test", actions=("step",), cacheable=False)  # type: ignore[misc]
        self.clock, self.queue_s, self.work_s = clock, queue_s, work_s
        self.fail_times, self.artifact = fail_times, artifact
        self.calls = 0
        self.hold = False
        self.started = threading.Event()

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        self.clock.advance(self.queue_s)
        return ResourceEstimate()

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        self.calls += 1
        self.started.set()
        if self.calls <= self.fail_times or (params.get("fail") and self.artifact):
            raise StageFailedError(f"{self.name} failed on purpose")
        if self.hold:
            await anyio.sleep_forever()
        self.clock.advance(self.work_s)
        if self.artifact:
            ctx.store_artifact(ARTIFACT, name="a.txt", media_type="text/plain")
        summary = StageSummary(
            method="test:timed",
            usage=Usage(prompt_tokens=100, completion_tokens=50, model_calls=1),
            cost=Cost(llm_usd=Decimal("0.01")),
        )
        return WorkerResult(output={"trail": [self.name]}, summary=summary)


FAIL = ParameterSpec(name="fail", type="boolean", default=False)
ALPHA = template(stage("fetch", "fetcher"), stage("write", "writer", "fetch"), parameters=(FAIL,))
ALPHA = attrs.evolve(ALPHA, name="alpha")
BETA = attrs.evolve(
    template(stage("check", "flaky"), stage("write", "writer", "check"), parameters=(FAIL,)),
    name="beta",
)


@attrs.frozen
class World:
    factory: AsyncFactory
    admin: AsyncSession
    clients: tuple[str, str]
    clock: ManualClock
    workers: dict[str, Timed]
    runtime: EmbeddedFactory


async def _world(runtime: EmbeddedFactory, factory: AsyncFactory, password: str) -> World:
    admin = await factory.login(ADMIN, password, login_type="admin")
    for made in (ALPHA, BETA):  # staff's own templates, of the test's workers
        await admin.templates.create(made)
    acme = await admin.clients.create(name="Acme", tier="premium", monthly_budget_usd=50)
    bolt = await admin.clients.create(name="Bolt", tier="premium", monthly_budget_usd=50)
    clock = runtime.config.clock
    assert isinstance(clock, ManualClock)
    workers = {w.name: w for w in runtime.config.workers or () if isinstance(w, Timed)}
    return World(factory, admin, (acme.id, bolt.id), clock, workers, runtime)


def _runtime(**changes: Any) -> EmbeddedFactory:
    """A factory of the test's workers and templates (`changes` to its config)."""
    clock = ManualClock()
    workers = [
        Timed("fetcher", clock, queue_s=0.5, work_s=2.0),
        Timed("writer", clock, queue_s=0.25, work_s=3.0, artifact=True),
        Timed("flaky", clock, queue_s=0.125, work_s=1.0, fail_times=1),
    ]
    return EmbeddedFactory(fast_config(state_url=None, clock=clock, workers=workers, **changes))


@pytest.fixture(params=["in-process", "http"])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    runtime = _runtime()
    if request.param == "in-process":
        async with AsyncFactory(InProcessFactoryTransport(runtime), runtime) as factory:
            password = await factory.bootstrap_admin(ADMIN)
            yield await _world(runtime, factory, password)
        return
    password = await runtime.accounts.bootstrap_admin(ADMIN)
    with UvicornThread(serving(runtime)) as server:
        async with AsyncFactory.connect(server.url) as factory:
            yield await _world(runtime, factory, password)


async def _run(
    w: World, client_id: str, name: str, *, fail: bool = False, wait: bool = True
) -> Any:
    request = await w.admin.requests.create(
        title=f"{name} for {client_id}", description="a test", client_id=client_id
    )
    w.clock.advance(10)  # the request waits for the staff that long
    await w.admin.requests.assign_template(request.id, name, {"fail": fail})
    execution = await w.admin.requests.execute(request.id)
    if not wait:
        return execution
    return await w.admin.executions.wait(execution.id, timeout_s=30)


async def _workload(w: World) -> dict[str, Any]:
    acme, bolt = w.clients
    runs = {
        "alpha-acme": await _run(w, acme, "alpha"),
        "alpha-bolt": await _run(w, bolt, "alpha"),
        "beta-acme": await _run(w, acme, "beta"),  # its first stage is retried once
        "beta-bolt": await _run(w, bolt, "beta", fail=True),  # its last stage always fails
    }
    writer = w.workers["writer"]
    writer.hold, writer.started = True, threading.Event()
    pending = await _run(w, acme, "alpha", wait=False)
    assert await anyio.to_thread.run_sync(writer.started.wait, 10)
    await w.admin.executions.cancel(pending.id)
    runs["cancelled"] = await w.admin.executions.wait(pending.id, timeout_s=30)
    writer.hold = False
    return runs


async def test_the_metrics_of_a_mixed_workload_are_the_known_truth(world: World) -> None:
    w = world
    since = w.clock.now()
    runs = await _workload(w)
    assert [r.status for r in runs.values()] == [
        ExecutionStatus.COMPLETED,
        ExecutionStatus.COMPLETED,
        ExecutionStatus.COMPLETED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
    ]
    attempts = w.runtime.config.retry.maximum_attempts
    report = await w.admin.metrics.summary(since=since, by="template")
    assert isinstance(report, MetricsReport)
    assert (report.since, report.until, report.by) == (since, w.clock.now(), "template")

    # Durations on the manual clock: alpha = 10 s for staff + (0.5 + 2) + (0.25 + 3);
    # beta = 10 + two offers of 0.125 around a failed attempt, 1 s of work, then 0.25 + 3.
    alpha_latency, beta_latency = 10 + 2.5 + 3.25, 10 + 0.125 * 2 + 1 + 3.25
    total = report.total
    assert (total.executions, total.completed, total.partial) == (5, 3, 0)
    assert (total.failed, total.cancelled) == (1, 1)
    assert (total.success_rate, total.failure_rate) == (3 / 5, 1 / 5)
    assert (total.partial_rate, total.cancelled_rate) == (0.0, 1 / 5)
    assert total.latency_p50_s == alpha_latency
    assert total.latency_p95_s == total.latency_p99_s == max(alpha_latency, beta_latency)
    assert total.stage_runs == 10
    # Attempts: 2 per alpha run, 1 + 2 for beta-acme, 1 + all of the failing write's for
    # beta-bolt; the cancelled run got as far as its write.
    assert total.attempts == 2 + 2 + 3 + (1 + attempts) + 2
    assert total.retries == 1 + (attempts - 1)
    writes = 3  # alpha-acme, alpha-bolt, beta-acme: one model call each stage that succeeded
    succeeded = 2 + 2 + 2 + 1 + 1  # and the failed run's check, the cancelled run's fetch
    assert total.model_calls == succeeded
    assert (total.prompt_tokens, total.completion_tokens) == (100 * succeeded, 50 * succeeded)
    assert total.tokens == 150 * succeeded
    assert total.bytes_stored >= len(ARTIFACT) * writes
    stage_costs = Decimal(0)
    for run in runs.values():
        stage_costs += sum(s.cost.total_usd for s in await w.admin.executions.stages(run.id))
    assert total.cost_usd == stage_costs >= Decimal("0.01") * succeeded
    assert total.cpu_s > 0
    assert total.peak_rss_kb > 0
    # Queue waits: what each stage's worker moved the clock while it was offered the stage.
    assert total.queue_p50_s == 0.25
    assert total.queue_p99_s == 0.5

    alpha, beta = report.groups
    assert (alpha.name, alpha.executions, alpha.completed, alpha.cancelled) == ("alpha", 3, 2, 1)
    assert (beta.name, beta.executions, beta.completed, beta.failed) == ("beta", 2, 1, 1)
    assert alpha.latency_p50_s == alpha.latency_p99_s == alpha_latency
    assert beta.latency_p50_s == beta.latency_p99_s == beta_latency
    assert (alpha.retries, beta.retries) == (0, 1 + (attempts - 1))
    assert alpha.stage_runs + beta.stage_runs == total.stage_runs
    assert alpha.model_calls + beta.model_calls == total.model_calls
    assert alpha.cost_usd + beta.cost_usd == total.cost_usd

    by_client = await w.admin.metrics.summary(since=since, by="client")
    assert [
        (g.name, g.executions, g.completed, g.failed, g.cancelled) for g in by_client.groups
    ] == [
        (w.clients[0], 3, 2, 0, 1),
        (w.clients[1], 2, 1, 1, 0),
    ]

    by_worker = await w.admin.metrics.summary(since=since, by="worker")
    lines = {g.name: g for g in by_worker.groups}
    assert sorted(lines) == ["fetcher", "flaky", "writer"]
    assert (lines["flaky"].attempts, lines["flaky"].retries) == (3, 1)
    assert lines["writer"].retries == attempts - 1
    # Stage duration of a succeeded or failed run: its last attempt's offer and work.
    assert lines["fetcher"].stage_p50_s == lines["fetcher"].stage_p99_s == 2.5
    assert lines["flaky"].stage_p50_s == lines["flaky"].stage_p99_s == 1.125
    assert lines["writer"].stage_p50_s == 3.25  # three succeeded
    assert lines["writer"].stage_p99_s == 3.25
    assert lines["writer"].stage_runs == 5
    assert lines["fetcher"].executions == 3  # the runs of alpha
    assert lines["fetcher"].queue_p50_s == 0.5

    by_stage = await w.admin.metrics.summary(since=since, by="stage")
    assert [(g.name, g.stage_runs) for g in by_stage.groups] == [("step", 10)]

    # A window that ends before the workload saw none of it.
    earlier = await w.admin.metrics.summary(since="30d", until=since)
    assert earlier.total == MetricsLine("total")
    assert earlier.groups == ()


async def test_metrics_are_for_staff_and_refuse_what_is_not_a_time_or_a_grouping(
    world: World,
) -> None:
    w = world
    await w.admin.users.create(
        email="cleo@example.com", password="a long password!", client_id=w.clients[0]
    )
    cleo = await w.factory.login("cleo@example.com", "a long password!")
    with pytest.raises(PermissionDeniedError):
        await cleo.metrics.summary()
    with pytest.raises(BadInputError):
        await w.admin.metrics.summary(by="colour")
    with pytest.raises(BadInputError):
        await w.admin.metrics.summary(since="last tuesday")
    with pytest.raises(BadInputError):
        await w.admin.metrics.summary(since="1h", until="2h")


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (
        50.0,
        95.0,
        99.0,
    )
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0


def test_since_takes_times_and_durations() -> None:
    now = ManualClock().now()
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2025-12-31T00:00:00", now) == now - timedelta(days=1)
    with pytest.raises(BadInputError):
        metrics_lines((), (), "request")
