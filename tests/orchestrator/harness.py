"""A real orchestrator on SQLite and memory storage, with small workers tests configure."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

import anyio
import attrs

from aifactory import ManualClock, SequentialIds, StageFailedError
from aifactory.models import Cost, StagePolicy, StageSpec, Template, Tier
from aifactory.orchestrator import ExecutionReport, Orchestrator, RetryPolicy, WorkerRegistry
from aifactory.orchestrator.live import DEFAULT_TIMEOUTS
from aifactory.orchestrator.quota import QuotaGate
from aifactory.protocol import ResourceEstimate, StageSummary
from aifactory.state import PostgresStore, SQLiteStore
from aifactory.state._threaded import ThreadedStore
from aifactory.storage import BlobStore, StorageConfig
from aifactory.transports import InProcessWorkerTransport
from aifactory.workers import Worker, WorkerContext, WorkerHost, WorkerInfo, WorkerResult


class Step(Worker):
    """Appends its name to `inputs["trail"]` (a list) and returns it; configurable behaviour.

    `fail_times` failures first (retryable), `delay_s` of work with heartbeats every
    `beat_s` (or none when `beat_s` is None), `stop` to end the pipeline, `cost` reported.
    """

    info: ClassVar[WorkerInfo] = WorkerInfo(name="step", description="test", actions=("step",))

    def __init__(
        self,
        name: str = "step",
        *,
        fail_times: int = 0,
        delay_s: float = 0.0,
        beat_s: float | None = None,
        stop: bool = False,
        estimate_usd: str = "0",
        cost_usd: str = "0",
        slots: int = 8,
        cacheable: bool = True,
    ) -> None:
        self.info = WorkerInfo(
            name=name, description="test", actions=("step",), slots=slots, cacheable=cacheable
        )  # type: ignore[misc]
        self.fail_times = fail_times
        self.delay_s = delay_s
        self.beat_s = beat_s
        self.stop = stop
        self.estimate_usd = Decimal(estimate_usd)
        self.cost_usd = Decimal(cost_usd)
        self.calls: list[int] = []
        self.running = 0
        self.peak = 0
        self.started: anyio.Event | None = None  # set (if given) when processing begins
        self.gate: anyio.Event | None = None  # waited for (if given) before finishing

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        return ResourceEstimate(cost_usd=self.estimate_usd)

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        self.calls.append(ctx.attempt)
        if self.started is not None:
            self.started.set()
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if len(self.calls) <= self.fail_times:
                raise StageFailedError(f"{self.name} failed on purpose ({len(self.calls)})")
            waited = 0.0
            while waited < self.delay_s:
                step = min(self.beat_s or self.delay_s, self.delay_s - waited)
                await anyio.sleep(step)
                waited += step
                if self.beat_s is not None:
                    await ctx.progress(100 * waited / self.delay_s, "working")
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.running -= 1
        trail = [*inputs.get("trail", []), self.name]
        output = {"trail": trail, "params": dict(params)}
        summary = StageSummary(
            method="test:step",
            continue_pipeline=not self.stop,
            cost=Cost(llm_usd=self.cost_usd),
        )
        return WorkerResult(output=output, summary=summary)


def stage(sid: str, worker: str, *after: str, **changes: Any) -> StageSpec:
    """A stage reading the trail of the stages it follows (the first of them)."""
    mapping = {"trail": f"{after[0]}.output.trail"} if after else {}
    changes.setdefault("depends_on", after)
    return StageSpec(id=sid, worker=worker, action="step", input_mapping=mapping, **changes)


def template(*stages: StageSpec, **changes: Any) -> Template:
    return Template(
        name="test",
        display_name="Test",
        description="",
        category="test",
        tiers=tuple(Tier),
        stages=stages,
        **changes,
    )


@attrs.define
class RecordingSink:
    reports: list[ExecutionReport] = attrs.field(factory=list)

    async def execution_finished(self, report: ExecutionReport) -> None:
        self.reports.append(report)


@attrs.define
class Budget:
    """A `QuotaGate` with a fixed budget, recording every call."""

    available: Decimal = Decimal("1000")
    held: dict[str, Decimal] = attrs.field(factory=dict)
    log: list[tuple[str, str, Decimal]] = attrs.field(factory=list)

    async def reserve(self, execution: Any, stage_id: str, amount: Decimal) -> Decimal | None:
        from aifactory import QuotaExceededError

        self.log.append(("reserve", stage_id, amount))
        if amount > self.available - sum(self.held.values()):
            raise QuotaExceededError(f"{stage_id} needs {amount}")
        self.held[stage_id] = amount

    async def settle(self, execution: Any, stage_id: str, cost: Decimal) -> None:
        self.log.append(("settle", stage_id, cost))
        self.held[stage_id] = cost

    async def release(self, execution: Any, stage_id: str) -> None:
        self.log.append(("release", stage_id, Decimal(0)))
        self.held.pop(stage_id, None)


def _default_store() -> ThreadedStore:
    from tests import helpers  # read when called: the `state_backend` fixture may set it

    url = helpers.TEST_STATE_URL
    if url is None:
        return SQLiteStore(":memory:")
    store = PostgresStore(url)
    helpers.TEST_STORES.append(store)
    return store


class Harness:
    """Store, storage, registry, sink and orchestrator, all real, in memory."""

    def __init__(
        self,
        workers: Sequence[Worker],
        *,
        retry: RetryPolicy | None = None,
        timeouts: StagePolicy = DEFAULT_TIMEOUTS,
        quota: QuotaGate | None = None,
        store: ThreadedStore | None = None,
        blobs: BlobStore | None = None,
        extra_endpoints: Sequence[Worker] = (),
        max_workers: int = 4,
        lease_s: float = 30.0,
        owner: str | None = None,
    ) -> None:
        self.clock = ManualClock()
        self.ids = SequentialIds()
        self.store = store or _default_store()
        self.blobs = blobs or BlobStore(StorageConfig.memory(), self.clock)
        self.sleeps: list[float] = []
        self.registry = WorkerRegistry(
            InProcessWorkerTransport(WorkerHost(w, self.blobs, self.clock, self.ids))
            for w in [*workers, *extra_endpoints]
        )
        self.sink = RecordingSink()

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)  # backoff recorded, not waited

        self.orchestrator = Orchestrator(
            self.store,
            self.blobs,
            self.registry,
            self.sink,
            clock=self.clock,
            ids=self.ids,
            quota=quota,
            retry=retry or RetryPolicy(initial_interval_s=1.0, maximum_attempts=3),
            timeouts=timeouts,
            max_workers=max_workers,
            sleep=sleep,
            rng=random.Random(7),  # noqa: S311 - reproducible jitter
            lease_s=lease_s,
            owner=owner,
        )

    async def run(self, tpl: Template, params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        execution = await self.orchestrator.create(tpl, params or {}, **kw)
        return await self.orchestrator.run(execution.id)

    async def kinds(self, execution_id: str) -> list[tuple[str, str | None]]:
        return [(e.kind, e.stage_id) for e in await self.store.list_events(execution_id)]
