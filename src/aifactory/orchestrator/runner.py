"""The orchestrator: creates executions and drives them, durably, to their end.

An execution's stages run as soon as their dependencies have succeeded, side by side up to
`resources.max_workers`, within the template's (or the caller's) overall time limit. Stages
committed before a crash are never run again: `run`/`launch` on an interrupted execution
resumes it from its checkpoint, and a stage that was in flight runs once more as a new
attempt. `cancel` stops a running execution; `retry` starts a failed or cancelled one again,
reusing every stage it had already committed.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc

from .._clock import Clock, IdFactory
from .._exceptions import AIFactoryError, BadInputError, ConflictError
from .._retry import RetryPolicy
from .._tracing import NO_TRACING, Tracer, traceparent
from ..models import (
    Execution,
    ExecutionStatus,
    StagePolicy,
    StageRun,
    StageStatus,
    Template,
)
from ..state import Claim, Store
from ..storage import BlobStore
from . import upkeep
from .costing import StoragePrices
from .driver import Driver
from .leasing import held_elsewhere, is_gone, replica_id
from .live import DEFAULT_TIMEOUTS, Engine, Live
from .quota import QuotaGate, Unlimited
from .registry import WorkerRegistry
from .scheduler import StageScheduler
from .sink import ExecutionSink
from .stages import StageRunner
from .telemetry import Telemetry

__all__ = ["Orchestrator"]

# Executions created here and not yet started: their first run need not read them back.
_FRESH_KEPT = 256


class Orchestrator:
    """Runs executions of pipeline templates on registered workers.

    Use as an async context manager: background executions started with `launch` run in its
    task group, and are stopped (resumable later) when it exits.
    """

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        registry: WorkerRegistry,
        sink: ExecutionSink,
        *,
        clock: Clock,
        ids: IdFactory,
        quota: QuotaGate | None = None,
        retry: RetryPolicy | None = None,
        prices: StoragePrices | None = None,
        timeouts: StagePolicy = DEFAULT_TIMEOUTS,
        max_workers: int = 4,
        cache_ttl_s: float = 3600.0,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: random.Random | None = None,
        owner: str | None = None,
        lease_s: float = 30.0,
        recover: bool = False,
        recover_every_s: float | None = None,
        telemetry: Telemetry | None = None,
        tracer: Tracer = NO_TRACING,
    ) -> None:
        if lease_s <= 0:
            raise BadInputError("lease_s must be positive", details={"field": "lease_s"})
        self.engine = Engine(
            store=store,
            blobs=blobs,
            registry=registry,
            quota=quota or Unlimited(),
            clock=clock,
            ids=ids,
            retry=retry or RetryPolicy(),
            prices=prices or StoragePrices(),
            timeouts=timeouts,
            cache_ttl_s=cache_ttl_s,
            sleep=sleep,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not secrets
            owner=owner or replica_id(),
            lease_s=lease_s,
            telemetry=telemetry or Telemetry(),
            tracer=tracer,
        )
        self.store, self.blobs, self.registry = store, blobs, registry
        self.clock = clock
        self.max_workers = max_workers
        self._stages = StageRunner(self.engine)
        self._scheduler = StageScheduler(self._stages)
        self._live: dict[str, Live] = {}
        self._driver = Driver(
            self.engine, self._stages.records, self._scheduler, sink, self._live, max_workers
        )
        # Executions being prepared to run here (between their first read and `_live`).
        self._starting: set[str] = set()
        self._fresh: dict[str, tuple[Execution, list[StageRun]]] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self.recover = recover
        self.recover_every_s = recover_every_s or lease_s / 3

    @property
    def sink(self) -> ExecutionSink:
        """Where finished executions are reported (replaceable, e.g. by a service that
        reports over HTTP)."""
        return self._driver.sink

    @sink.setter
    def sink(self, sink: ExecutionSink) -> None:
        self._driver.sink = sink

    @property
    def owner(self) -> str:
        """This replica's name as a lease holder (`leasing.replica_id`)."""
        return self.engine.owner

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._keep_leases, name="lease keeper")
        if self.recover:
            # What a stopped process left is running again before this one is in use.
            with contextlib.suppress(AIFactoryError):
                await self.recover_now()
            self._tg.start_soon(self._recover_forever, name="recovery")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        held = self._held()  # before the runs end and forget their leases
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            # Stopped, not finished: another replica may resume them at once.
            with anyio.CancelScope(shield=True):
                if held:
                    with contextlib.suppress(AIFactoryError):
                        await self.store.release_leases(self.owner, held)

    # -- leases --------------------------------------------------------------------------------

    def _held(self) -> dict[str, int]:
        return {i: live.lease for i, live in self._live.items() if live.lease is not None}

    async def _keep_leases(self) -> None:
        """Renew the leases of what runs here, three times per lease; stop the executions
        whose lease another replica took (this one may commit nothing more about them)."""
        while True:
            await anyio.sleep(self.engine.lease_s / 3)
            held = self._held()
            if not held:
                continue
            expires = self.clock.now() + timedelta(seconds=self.engine.lease_s)
            try:
                lost = await self.store.renew_leases(self.owner, held, expires)
            except AIFactoryError:
                continue  # the database is away: try again; the fences keep commits safe
            for execution_id in lost:
                live = self._live.get(execution_id)
                if live is not None:
                    live.lost = True
                    live.scope.cancel()

    async def _report_again(self, execution_id: str, token: int) -> None:
        try:
            await self._driver.report(execution_id)
            await self.store.release_leases(self.owner, {execution_id: token}, finished=True)
        except AIFactoryError:
            pass  # the lease runs out and this is tried again, here or elsewhere

    async def _recover_forever(self) -> None:
        while True:
            await anyio.sleep(self.recover_every_s)
            with contextlib.suppress(AIFactoryError):
                await self.recover_now()

    async def recover_now(self, limit: int = 100) -> list[str]:
        """Take over runnable executions nobody runs (never started, their replica gone or
        its lease expired) and resume them in the background; returns their ids.

        Raises `ConflictError` if the orchestrator is not started.
        """
        if self._tg is None:
            raise ConflictError("the orchestrator is not started (use `async with`)")
        now = self.clock.now()
        dead = sorted(
            {
                lease.owner
                for lease in await self.store.list_leases()
                if lease.owner is not None and lease.owner != self.owner and is_gone(lease.owner)
            }
        )
        expires = now + timedelta(seconds=self.engine.lease_s)
        # Not what runs here or is starting here: that takes its lease itself.
        exclude = sorted({*self._live, *self._starting})
        claimed = await self.store.claim_ready(self.owner, now, expires, limit, dead, exclude)
        taken = []
        for execution_id, token in claimed:
            self._starting.add(execution_id)
            try:
                live = await Live.stored(self.engine, execution_id)
            except ConflictError:
                # It finished, but the process that ran it stopped before its report.
                self._tg.start_soon(self._report_again, execution_id, token)
                taken.append(execution_id)
                continue
            except AIFactoryError:
                continue
            finally:
                self._starting.discard(execution_id)
            running = self._live.get(execution_id)
            if running is not None:  # launched here meanwhile: that run takes this token
                if running.claim is not None:
                    running.claim = Claim(self.owner, token, expires)
                continue
            live.lease = token
            self._live[execution_id] = live
            self._tg.start_soon(self._driver.in_background, live, name=f"execution {execution_id}")
            taken.append(execution_id)
        return taken

    # -- creating, starting, stopping ----------------------------------------------------------

    async def create(
        self,
        template: Template,
        parameters: Mapping[str, Any],
        *,
        context: Mapping[str, Any] | None = None,
        resources: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        client_id: str | None = None,
        store: Store | None = None,
        runnable: bool = False,
    ) -> Execution:
        """Record a new pending execution of `template` (in `store`, a transaction the caller
        holds, if given). `runnable` lets any replica take it up, should `launch` never
        come; else it waits for `launch` or `run`.

        Raises `BadInputError` for an invalid template or resources and `WorkerError` when
        one of its workers has no endpoint.
        """
        self.engine.plan(template)  # validates it (once per template object)
        self.registry.require(s.worker for s in template.stages)
        now = self.clock.now()
        execution = Execution(
            id=self.engine.ids.new("exec"),
            request_id=request_id,
            client_id=client_id,
            template=template,
            parameters=dict(parameters),
            status=ExecutionStatus.PENDING,
            created_at=now,
            updated_at=now,
            stages_total=len(template.stages),
            context=dict(context or {}),
            resources=dict(resources or {}),
            trace=traceparent(),
        )
        runs = [
            StageRun(execution.id, s.id, s.worker, StageStatus.PENDING) for s in template.stages
        ]
        await (store or self.store).add_execution(execution, runs, runnable)
        self._fresh[execution.id] = (execution, runs)
        while len(self._fresh) > _FRESH_KEPT:
            del self._fresh[next(iter(self._fresh))]
        return execution

    async def launch(self, execution_id: str) -> None:
        """Run (or resume) an execution in the background, unless it runs already (here or
        in another replica). Raises `ConflictError` if it has finished."""
        if self._tg is None:
            raise ConflictError("the orchestrator is not started (use `async with`)")
        if execution_id in self._live or execution_id in self._starting:
            return
        try:
            live = await self._prepare(execution_id)
        except ConflictError as exc:
            if "owner" in exc.details or execution_id in self._live:
                return  # it runs elsewhere, or started here meanwhile
            raise
        self._tg.start_soon(self._driver.in_background, live, name=f"execution {execution_id}")

    async def run(self, execution_id: str) -> Execution:
        """Run (or resume) an execution to its end and return its final record.

        An execution that finished but was never reported (its process stopped between its
        final commit and the end of its report) is reported now. Raises `ConflictError` if
        it has finished and was reported, or runs already (here or in another process).
        """
        try:
            live = await self._prepare(execution_id)
        except ConflictError as exc:
            if "status" not in exc.details:
                raise
            lease = await self.store.lease_of(execution_id)
            if not lease.runnable or held_elsewhere(lease, self.owner, self.clock.now()):
                raise
            # Fenced on the stopped holder's token: a process that took it up meanwhile
            # keeps it.
            execution = await self._driver.report(execution_id)
            owner = lease.owner or self.owner
            await self.store.release_leases(owner, {execution_id: lease.token}, finished=True)
            return execution
        return await self._driver.drive(live)

    async def cancel(self, execution_id: str) -> Execution:
        """Stop an execution; it ends `cancelled` (stages in flight too) and is reported.

        An execution interrupted by a crash (recorded as running, but running nowhere) is
        cancelled as well. Raises `ConflictError` if it has already finished.
        """
        live = self._live.get(execution_id)
        if live is not None:
            live.cancelled = True
            live.scope.cancel()
            await live.done.wait()
            return await self.store.get_execution(execution_id)
        live = await self._prepare(execution_id)
        live.cancelled = True
        try:
            with anyio.CancelScope(shield=True):
                final = await self._driver.finish(live)
            return final
        finally:
            if self._live.get(execution_id) is live:
                del self._live[execution_id]
            live.done.set()
            self.engine.touch(execution_id)

    async def reopen(self, execution_id: str, store: Store | None = None) -> Execution:
        """Make a failed or cancelled execution runnable again, keeping committed stages
        (see `upkeep.reopen`), in `store` (a transaction the caller holds) if given. Raises
        `ConflictError` for any other status."""
        return await upkeep.reopen(store or self.store, self.clock, execution_id)

    async def report(self, execution_id: str) -> Execution:
        """Report a finished execution to the sink again, with the artifacts it delivered
        (see `Driver.report`). Raises `NotFoundError`, and `ConflictError` if it has not
        finished."""
        return await self._driver.report(execution_id)

    # -- following -----------------------------------------------------------------------------

    def is_running(self, execution_id: str) -> bool:
        """Whether this process is running the execution now."""
        return execution_id in self._live

    async def wait(self, execution_id: str) -> Execution:
        """Wait until an execution running here ends; return its stored record."""
        live = self._live.get(execution_id)
        if live is not None:
            await live.done.wait()
        return await self.store.get_execution(execution_id)

    async def changed(self, execution_id: str, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) until the execution has new events."""
        event = self.engine.changed.setdefault(execution_id, anyio.Event())
        with anyio.move_on_after(timeout_s):
            await event.wait()

    async def prune(self, finished_before: datetime) -> dict[str, int]:
        """Forget what executions that finished before `finished_before` no longer need
        (see `upkeep.prune`); how many of each went."""
        return await upkeep.prune(self.store, self.blobs, self.clock, finished_before)

    # -- driving -------------------------------------------------------------------------------

    async def _prepare(self, execution_id: str) -> Live:
        if execution_id in self._live or execution_id in self._starting:
            raise ConflictError(f"execution {execution_id} is already running")
        self._starting.add(execution_id)
        try:
            return await self._claimable(execution_id)
        finally:
            self._starting.discard(execution_id)

    async def _claimable(self, execution_id: str) -> Live:
        fresh = self._fresh_live(execution_id)
        live = fresh or await Live.stored(self.engine, execution_id)
        now = self.clock.now()
        token = 0  # created here and not started: nobody has claimed it
        if fresh is None:
            lease = await self.store.lease_of(execution_id)
            if held_elsewhere(lease, self.owner, now):
                raise ConflictError(
                    f"execution {execution_id} is running in another process ({lease.owner})",
                    details={"owner": lease.owner},
                )
            token = lease.token
        if execution_id in self._live:  # started meanwhile, while this one read the store
            raise ConflictError(f"execution {execution_id} is already running")
        # Taken with its first commit; a replica that claims it first makes that fail.
        live.claim = Claim(self.owner, token, now + timedelta(seconds=self.engine.lease_s))
        self._live[execution_id] = live
        return live

    def _fresh_live(self, execution_id: str) -> Live | None:
        """The execution just created here: its first run need not read back what `create`
        wrote. (Had another process started it meanwhile, it would have claimed its lease,
        and this run's claim of the first lease fails.)"""
        fresh = self._fresh.pop(execution_id, None)
        if fresh is None:
            return None
        execution, runs = fresh
        return Live.fresh(execution, runs, self.engine.plan(execution.template))
