"""What the runner shares: its dependencies (`Engine`), and a running execution (`Live`)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any

import anyio
import attrs

from .._clock import Clock, IdFactory
from .._exceptions import ConflictError
from .._retry import RetryPolicy
from .._tracing import NO_TRACING, Tracer
from ..models import (
    Execution,
    ExecutionEvent,
    StagePolicy,
    StageRun,
    StageSpec,
    StageStatus,
    StorageRef,
    Template,
)
from ..state import Claim, Store
from ..storage import BlobStore
from . import planning
from .costing import StoragePrices
from .planning import TemplatePlan
from .quota import QuotaGate
from .registry import WorkerRegistry
from .telemetry import Telemetry

__all__ = ["DEFAULT_TIMEOUTS", "Engine", "Live", "committed_outputs"]

#: Used where neither the stage nor the orchestrator's configuration says otherwise.
DEFAULT_TIMEOUTS = StagePolicy(schedule_to_start_s=60.0, start_to_close_s=600.0, heartbeat_s=None)

_PLANS_KEPT = 16


@attrs.define
class Engine:
    """The orchestrator's dependencies and settings, shared by its parts.

    Every write about a running execution is one `ExecutionWrite` to `store`.
    """

    store: Store
    blobs: BlobStore
    registry: WorkerRegistry
    quota: QuotaGate
    clock: Clock
    ids: IdFactory
    retry: RetryPolicy
    prices: StoragePrices
    timeouts: StagePolicy
    cache_ttl_s: float
    sleep: Callable[[float], Awaitable[None]]
    rng: random.Random
    owner: str
    lease_s: float
    telemetry: Telemetry = attrs.field(factory=Telemetry)
    tracer: Tracer = NO_TRACING
    changed: dict[str, anyio.Event] = attrs.field(factory=dict)
    plans: list[TemplatePlan] = attrs.field(factory=list)

    def touch(self, execution_id: str) -> None:
        """Wake whoever follows the execution's events."""
        event = self.changed.pop(execution_id, None)
        if event is not None:
            event.set()

    def plan(self, template: Template) -> TemplatePlan:
        """The template's plan; validated once per template object (executions of one
        catalogue template share it). Raises `BadInputError` for an invalid template."""
        for plan in self.plans:
            if plan.template is template:
                return plan
        plan = TemplatePlan.of(template)
        self.plans = [plan, *self.plans[: _PLANS_KEPT - 1]]
        return plan


@attrs.define
class Live:
    """The in-memory side of one execution running in this process.

    `plan` is its template's plan (dependencies, deliverable stages); `started` the stages
    the scheduler has started (or whose first attempt a commit recorded); `next_stage`, set
    by the scheduler, names the one stage that may start right away when nothing else is in
    flight (see `records.Records.prestart`); `alongside`, set by the scheduler too, runs a
    coroutine function in the execution's task group (the run ends when it has finished).
    `lock` is held while a write about the execution is built and committed. `lease` is the
    fencing token of the lease this process runs it under; until its first commit, `claim`
    is how it takes that lease. `lost`: another process has taken the execution over.
    """

    execution: Execution
    runs: dict[str, StageRun]
    outputs: dict[str, StorageRef]
    version: int
    seq: int
    done: anyio.Event
    plan: TemplatePlan
    started: set[str] = attrs.field(factory=set)
    next_stage: Callable[[], StageSpec | None] | None = None
    alongside: Callable[[Callable[[], Coroutine[Any, Any, None]]], None] | None = None
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    lock: anyio.Lock = attrs.field(factory=anyio.Lock)
    lease: int | None = None
    claim: Claim | None = None
    lost: bool = False
    stop: bool = False
    cancelled: bool = False
    crash: str | None = None

    def event(
        self, clock: Clock, kind: str, stage_id: str | None = None, **data: Any
    ) -> ExecutionEvent:
        """The next event of this execution."""
        self.seq += 1
        return ExecutionEvent(self.execution.id, self.seq, clock.now(), kind, stage_id, data)

    def statuses(self) -> dict[str, StageStatus]:
        """The stages' statuses as the scheduler sees them: a started stage counts as running
        until it reaches a final status, even before its first attempt is recorded."""
        started = self.started
        return {
            sid: StageStatus.RUNNING if sid in started and not r.status.is_final else r.status
            for sid, r in self.runs.items()
        }

    def first_ready(self) -> StageSpec | None:
        """The stage that may start at once, its first attempt recorded by the commit that
        makes it ready: the first ready one, when nothing else is in flight and there is
        nothing to skip first (so events keep their order)."""
        now = self.statuses()
        if self.stop or StageStatus.RUNNING in now.values():
            return None
        plan = self.plan
        ready, blocked = planning.frontier(plan.template, now, plan.deps)
        ready = [s for s in ready if s.id not in self.started]
        if blocked or not ready:
            return None
        first = ready[0]
        if not planning.evaluate_condition(first.condition, self.execution.parameters):
            return None
        return first

    def all_succeeded(self, but: str) -> bool:
        """Whether every stage other than `but` has succeeded."""
        return all(r.status is StageStatus.SUCCEEDED for sid, r in self.runs.items() if sid != but)

    @classmethod
    def fresh(cls, execution: Execution, runs: Sequence[StageRun], plan: TemplatePlan) -> Live:
        """An execution as this process just created it: nothing run, no events yet."""
        return cls(
            execution=execution,
            runs={r.stage_id: r for r in runs},
            outputs={},
            version=0,
            seq=0,
            done=anyio.Event(),
            plan=plan,
        )

    @classmethod
    async def stored(cls, engine: Engine, execution_id: str) -> Live:
        """An execution as the store has it, ready to resume.

        Raises `NotFoundError`, and `ConflictError` if it has finished.
        """
        store = engine.store
        execution = await store.get_execution(execution_id)
        if execution.status.is_final:
            raise ConflictError(
                f"execution {execution_id} is already {execution.status.value}",
                details={"status": execution.status.value},
            )
        # A stage recorded as running was in flight when its process stopped: it is pending
        # again, and its next attempt number fences off the lost one.
        runs = {
            r.stage_id: attrs.evolve(r, status=StageStatus.PENDING)
            if r.status is StageStatus.RUNNING
            else r
            for r in await store.get_stage_runs(execution_id)
        }
        checkpoint = await store.latest_checkpoint(execution_id)
        seq = await store.last_event_seq(execution_id)
        return cls(
            execution=execution,
            runs=runs,
            # Committed stage runs and the checkpoint are written in one transaction; the
            # runs also survive retention pruning of old checkpoints.
            outputs=committed_outputs(runs.values()),
            version=checkpoint.version if checkpoint else 0,
            seq=seq,
            done=anyio.Event(),
            # Validated when it was created; a template stored then stays runnable.
            plan=TemplatePlan.of(execution.template, validate=False),
        )


def committed_outputs(runs: Iterable[StageRun]) -> dict[str, StorageRef]:
    """The outputs of the stages that succeeded, by stage id, as their runs record them."""
    return {
        r.stage_id: r.output_ref
        for r in runs
        if r.status is StageStatus.SUCCEEDED and r.output_ref is not None
    }
