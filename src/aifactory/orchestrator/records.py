"""What the orchestrator records about stages, each as one `ExecutionWrite` to the store.

Each `Records` method that writes holds the live execution's lock while it builds its
write from the live execution, awaits the store's commit, and only then updates the live
execution. So two stages of one execution committing at once add up instead of one
overwriting the other's totals, and a write that fails leaves the live execution as it was.
(Writes of different executions commit together: the store groups them.)

A stage's commit also records the first attempt of the stage it makes ready, when nothing
else of the execution is in flight (`prestart`): that attempt is then durable before its
handshake, as every attempt must be, and a linear pipeline pays one transaction per stage
instead of two. In the same way the execution's start records its first stage's first
attempt (`start`), and the commit of its last stage, when every stage has succeeded, records
its completion: a linear pipeline of n stages commits n + 1 times while it runs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

from .._exceptions import LeaseLostError
from ..models import (
    Checkpoint,
    Cost,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    StageRun,
    StageSpec,
    StageStatus,
    StorageRef,
    Usage,
)
from ..models.enums import StorageScheme
from ..protocol.codec import json_text, unstructure
from ..protocol.messages import Binding, StageSummary
from ..state import CacheEntry, ExecutionWrite
from ..workers.host import STAGE_NAMESPACE
from . import planning
from .live import Engine, Live

__all__ = ["Records", "StageWork", "cached_summary"]


@attrs.frozen
class StageWork:
    """What every attempt of a stage works from: merged parameters, input bindings, the
    input document's reference and the result-cache key (`None`: not cached)."""

    params: dict[str, Any]
    bindings: dict[str, Binding]
    input_ref: StorageRef
    cache_key: str | None


class Records:
    """Builds and records stage inputs, attempts, outcomes, execution changes and events."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine

    # -- inputs -------------------------------------------------------------------------------

    def inputs(self, live: Live, stage: StageSpec) -> tuple[dict[str, Any], dict[str, Binding]]:
        """The stage's merged parameters and its input bindings."""
        execution = live.execution
        params = planning.merge_parameters(execution.parameters, stage.parameters)
        bindings = planning.bind_inputs(stage, live.outputs, params, execution.context)
        return params, bindings

    async def input_ref(
        self,
        live: Live,
        stage: StageSpec,
        params: dict[str, Any],
        bindings: dict[str, Binding],
    ) -> StorageRef:
        """Store the stage's input document; its reference."""
        return await self.e.blobs.aput(
            input_document(stage.action, params, bindings),
            namespace=STAGE_NAMESPACE,
            key=f"{live.execution.id}/{stage.id}/input.json",
            media_type="application/json",
        )

    def work_now(self, live: Live, stage: StageSpec) -> StageWork | None:
        """The stage's work if it can be worked out without I/O (the worker's cacheability
        known, the input document small enough to travel inline); else None."""
        params, bindings = self.inputs(live, stage)
        cache_key = None
        if stage.policy.cache and live.execution.resources.get("cache") is not False:
            known = self.e.registry.known_cacheable(stage.worker)
            if known is None:
                return None
            cacheable, version = known
            if cacheable:
                cache_key = planning.result_cache_key(
                    stage.worker, version, stage.action, params, bindings
                )
        body = input_document(stage.action, params, bindings)
        placement = self.e.blobs.config.placement_for(STAGE_NAMESPACE)
        if placement.scheme_for(len(body)) is not StorageScheme.INLINE:
            return None  # written to storage: not without I/O
        return StageWork(params, bindings, StorageRef.inline(body, "application/json"), cache_key)

    # -- writes ---------------------------------------------------------------------------

    def _next_attempt(self, live: Live, stage: StageSpec, input_ref: StorageRef) -> StageRun:
        last = live.runs[stage.id]
        # Built directly rather than with attrs.evolve: this runs for every stage, and
        # evolve walks every field by name.
        return StageRun(
            execution_id=last.execution_id,
            stage_id=last.stage_id,
            worker=last.worker,
            status=StageStatus.RUNNING,
            attempt=last.attempt + 1,
            handshake_id=None,
            input_ref=input_ref,
            output_ref=last.output_ref,
            summary=last.summary,
            usage=last.usage,
            cost=last.cost,
            error=None,
            started_at=self.e.clock.now(),
            finished_at=last.finished_at,
        )

    async def attempt(self, live: Live, stage: StageSpec, input_ref: StorageRef) -> StageRun:
        """Record the stage's next attempt, before it starts. Raises `StaleAttemptError`."""
        async with live.lock:
            run = self._next_attempt(live, stage, input_ref)
            event = live.event(self.e.clock, "stage.started", stage.id, attempt=run.attempt)
            await self._record(live, started=(run,), events=(event,))
            live.runs[stage.id] = run
            return run

    async def start(
        self, live: Live, kind: str, *, data: dict[str, Any], **changes: Any
    ) -> list[tuple[StageSpec, StageWork]]:
        """Record the execution's start (or resumption) with `changes` and one event of
        `kind`, and in the same commit the first attempt of the stage that can start at once,
        if any; returns that stage and its work, for the scheduler to go on with."""
        async with live.lock:
            e = self.e
            execution = attrs.evolve(live.execution, updated_at=e.clock.now(), **changes)
            events = [live.event(e.clock, kind, None, **data)]
            started: tuple[StageRun, ...] = ()
            stage = live.first_ready()
            work = self._work_or_none(live, stage) if stage is not None else None
            if stage is not None and work is not None:
                started = (self._next_attempt(live, stage, work.input_ref),)
                events.append(
                    live.event(e.clock, "stage.started", stage.id, attempt=started[0].attempt)
                )
            await self._record(live, execution=execution, started=started, events=tuple(events))
            live.execution = execution
            if stage is None or work is None:
                return []
            live.runs[stage.id] = started[0]
            live.started.add(stage.id)
            return [(stage, work)]

    def _work_or_none(self, live: Live, stage: StageSpec) -> StageWork | None:
        try:
            return self.work_now(live, stage)
        except Exception:
            # Its input cannot be built (parameters that are not JSON, say): not a reason to
            # undo the commit. Started the usual way, the stage reports it as its own failure.
            return None

    async def success(
        self,
        live: Live,
        stage: StageSpec,
        output_ref: StorageRef,
        summary: StageSummary,
        cost: Cost,
        *,
        cached: bool,
        cache_key: str | None,
        input_ref: StorageRef | None = None,
    ) -> tuple[Execution, list[tuple[StageSpec, StageWork]]]:
        """Commit a succeeded attempt: stage run, totals, checkpoint, event (which carries
        the execution's running totals) and the result cache entry; and the first attempt of
        the stage this makes ready, if any (`prestart`), or, when this was the last stage and
        every stage has succeeded, the execution's completion. With `input_ref`, the attempt
        itself is recorded in the same transaction (a cache hit: no worker ran)."""
        async with live.lock:
            started: tuple[StageRun, ...] = ()
            ready = None
            if input_ref is not None:
                started = (self._next_attempt(live, stage, input_ref),)
                live.runs[stage.id], last_run = started[0], live.runs[stage.id]
            try:
                write, run, execution = self._success(
                    live, stage, output_ref, summary, cost, cached=cached, cache_key=cache_key
                )
                ready = (
                    self.prestart(live, stage, output_ref) if summary.continue_pipeline else None
                )
                if ready is not None:
                    # Taken before the commit: a stage that finished earlier may schedule
                    # while this commit is in flight, and must not start this one as well.
                    live.started.add(ready[0].id)
                    write = attrs.evolve(
                        write,
                        started=(*started, ready[2]),
                        events=(*write.events, ready[3]),
                    )
                else:
                    if started:
                        write = attrs.evolve(write, started=started)
                    if (
                        summary.continue_pipeline
                        and not live.cancelled
                        and live.all_succeeded(but=stage.id)
                    ):
                        write, execution = self._completion(live, write, execution)
                await self._commit(live, write)
            except BaseException:
                if started:
                    live.runs[stage.id] = last_run
                if ready is not None:
                    live.started.discard(ready[0].id)
                raise
            live.runs[stage.id], live.execution = run, execution
            live.outputs = live.outputs | {stage.id: output_ref}
            live.version += 1
            if ready is None:
                return execution, []
            next_stage, work, next_run, _ = ready
            live.runs[next_stage.id] = next_run
            return execution, [(next_stage, work)]

    def _success(
        self,
        live: Live,
        stage: StageSpec,
        output_ref: StorageRef,
        summary: StageSummary,
        cost: Cost,
        *,
        cached: bool,
        cache_key: str | None,
    ) -> tuple[ExecutionWrite, StageRun, Execution]:
        e = self.e
        now = e.clock.now()
        summary_data: dict[str, Any] = unstructure(summary)
        last = live.runs[stage.id]
        run = StageRun(
            execution_id=last.execution_id,
            stage_id=last.stage_id,
            worker=last.worker,
            status=StageStatus.SUCCEEDED,
            attempt=last.attempt,
            handshake_id=last.handshake_id,
            input_ref=last.input_ref,
            output_ref=output_ref,
            summary=summary_data,
            # With what earlier attempts spent (their share of the execution is in already).
            usage=last.usage + summary.usage,
            cost=last.cost + cost,
            error=None,
            started_at=last.started_at,
            finished_at=now,
        )
        last_execution = live.execution
        # Built directly rather than with attrs.evolve (see `_next_attempt`).
        execution = Execution(
            id=last_execution.id,
            request_id=last_execution.request_id,
            client_id=last_execution.client_id,
            template=last_execution.template,
            parameters=last_execution.parameters,
            status=last_execution.status,
            created_at=last_execution.created_at,
            updated_at=now,
            started_at=last_execution.started_at,
            finished_at=last_execution.finished_at,
            error=last_execution.error,
            usage=last_execution.usage + summary.usage,
            cost=last_execution.cost + cost,
            stages_total=last_execution.stages_total,
            stages_done=last_execution.stages_done + 1,
            context=last_execution.context,
            resources=last_execution.resources,
            runs=last_execution.runs,
            trace=last_execution.trace,
        )
        # The checkpoint row holds what this version adds; the store folds the versions.
        checkpoint = Checkpoint(execution.id, live.version + 1, {stage.id: output_ref}, now)
        done = live.event(
            e.clock,
            "stage.succeeded",
            stage.id,
            attempt=run.attempt,
            method=summary.method,
            cached=cached,
            tokens=summary.usage.tokens,
            cost_usd=str(cost.total_usd),
            progress=execution.progress,
            # The execution's running totals ride along: one event row per stage, not two.
            total_usd=str(execution.cost.total_usd),
            total_tokens=execution.usage.tokens,
        )
        cache = None
        if cache_key is not None:
            expires = now + timedelta(seconds=e.cache_ttl_s)
            cache = CacheEntry(cache_key, stage.worker, output_ref, summary_data, now, expires)
        write = self._write(
            live,
            finished=run,
            totals=execution,
            checkpoint=checkpoint,
            events=(done,),
            cache=cache,
        )
        return write, run, execution

    def _completion(
        self, live: Live, write: ExecutionWrite, execution: Execution
    ) -> tuple[ExecutionWrite, Execution]:
        """`write` (the last stage's commit) with the execution's completion added."""
        now = self.e.clock.now()
        completed = attrs.evolve(
            execution, status=ExecutionStatus.COMPLETED, error=None, finished_at=now
        )
        event = live.event(self.e.clock, "execution.completed", None, error=None)
        write = attrs.evolve(write, totals=None, execution=completed, events=(*write.events, event))
        return write, completed

    def prestart(
        self, live: Live, finishing: StageSpec, output_ref: StorageRef
    ) -> tuple[StageSpec, StageWork, StageRun, ExecutionEvent] | None:
        """The first attempt of the one stage that may start once `finishing` commits, when
        nothing else of the execution is in flight; the caller records it with that commit
        and starts the stage once it committed.

        Anything less simple (several stages in flight, a stage to skip, a worker whose
        health is not known, a large input) is left to the runner's scheduling."""
        runs, outputs = live.runs, live.outputs
        finished = runs[finishing.id]
        # As the scheduler will see the execution once this commit lands.
        runs[finishing.id] = attrs.evolve(finished, status=StageStatus.SUCCEEDED)
        live.outputs = outputs | {finishing.id: output_ref}
        try:
            stage = live.next_stage() if live.next_stage is not None else None
            work = None if stage is None else self._work_or_none(live, stage)
        finally:
            runs[finishing.id], live.outputs = finished, outputs
        if stage is None or work is None:
            return None
        run = self._next_attempt(live, stage, work.input_ref)
        event = live.event(self.e.clock, "stage.started", stage.id, attempt=run.attempt)
        return stage, work, run, event

    async def failure(self, live: Live, stage: StageSpec, message: str, code: str) -> Execution:
        """Record a stage's final failure."""
        e = self.e
        async with live.lock:
            now = e.clock.now()
            run = attrs.evolve(
                live.runs[stage.id], status=StageStatus.FAILED, error=message, finished_at=now
            )
            execution = attrs.evolve(
                live.execution, stages_done=live.execution.stages_done + 1, updated_at=now
            )
            event = live.event(
                e.clock,
                "stage.failed",
                stage.id,
                attempt=run.attempt,
                error=message,
                code=code,
                required=stage.required,
            )
            await self._record(live, runs=(run,), execution=execution, events=(event,))
            live.runs[stage.id], live.execution = run, execution
            return execution

    async def error(
        self, live: Live, stage: StageSpec, message: str, spent: tuple[Usage, Cost] | None = None
    ) -> None:
        """Record why the current attempt failed (it may be retried), and what it `spent`
        on models all the same: the stage and the execution carry it, to be charged."""
        async with live.lock:
            last = live.runs[stage.id]
            if spent is None:
                run = attrs.evolve(last, error=message)
                await self._record(live, runs=(run,))
            else:
                usage, cost = spent
                run = attrs.evolve(
                    last, error=message, usage=last.usage + usage, cost=last.cost + cost
                )
                execution = attrs.evolve(
                    live.execution,
                    usage=live.execution.usage + usage,
                    cost=live.execution.cost + cost,
                    updated_at=self.e.clock.now(),
                )
                await self._record(live, runs=(run,), execution=execution)
                live.execution = execution
            live.runs[stage.id] = run

    async def put_run(self, live: Live, run: StageRun) -> None:
        """Replace a stage run as it is (an attempt cut short)."""
        async with live.lock:
            await self._record(live, runs=(run,))
            live.runs[run.stage_id] = run

    async def event(self, live: Live, kind: str, stage_id: str | None, **data: Any) -> None:
        """Record one event."""
        async with live.lock:
            await self._record(live, events=(live.event(self.e.clock, kind, stage_id, **data),))

    async def skip(self, live: Live, stage: StageSpec, reason: str) -> None:
        """Record that a stage will not run."""
        async with live.lock:
            run = attrs.evolve(live.runs[stage.id], status=StageStatus.SKIPPED, error=reason)
            await self._execution(
                live,
                "stage.skipped",
                stage_id=stage.id,
                data={"reason": reason},
                finished_stages=1,
                stage_runs=(run,),
            )
            live.runs[stage.id] = run

    async def execution(
        self,
        live: Live,
        kind: str,
        *,
        stage_id: str | None = None,
        data: dict[str, Any] | None = None,
        **changes: Any,
    ) -> None:
        """Record the execution with `changes` and one event of `kind`."""
        async with live.lock:
            await self._execution(live, kind, stage_id=stage_id, data=data, **changes)

    async def _execution(
        self,
        live: Live,
        kind: str,
        *,
        stage_id: str | None = None,
        data: dict[str, Any] | None = None,
        finished_stages: int = 0,
        stage_runs: tuple[StageRun, ...] = (),
        **changes: Any,
    ) -> None:
        e = self.e
        execution = attrs.evolve(
            live.execution,
            updated_at=e.clock.now(),
            stages_done=live.execution.stages_done + finished_stages,
            **changes,
        )
        event = live.event(e.clock, kind, stage_id, **(data or {}))
        await self._record(live, runs=stage_runs, execution=execution, events=(event,))
        live.execution = execution  # once written (see the module's docstring)

    @staticmethod
    def _write(live: Live, **parts: Any) -> ExecutionWrite:
        """A write about `live`, fenced by its lease (or, its first, taking the lease)."""
        return ExecutionWrite(live.execution.id, lease=live.lease, claim=live.claim, **parts)

    async def _record(self, live: Live, **parts: Any) -> None:
        await self._commit(live, self._write(live, **parts))

    async def _commit(self, live: Live, write: ExecutionWrite) -> None:
        """Commit `write`; if it fails, the sequence numbers of its events are used again."""
        claim = write.claim
        try:
            await self.e.store.record(write)
        except BaseException as exc:
            if write.events:
                live.seq = write.events[0].seq - 1
            if isinstance(exc, LeaseLostError):
                live.lost = True
            raise
        if claim is not None:
            live.claim, live.lease = None, claim.token + 1


def input_document(action: str, params: dict[str, Any], bindings: dict[str, Binding]) -> bytes:
    """The stage input document's bytes: `dumps(unstructure(StageInput(...)))`, without
    walking the plain JSON values through the converter (only what JSON cannot hold, such
    as the bindings' storage references, goes through it)."""
    document = {
        "action": action,
        "bindings": {
            name: {"path": b.path, "ref": b.ref, "value": b.value} for name, b in bindings.items()
        },
        "parameters": params,
    }
    return json_text(document).encode()


def cached_summary(original: StageSummary) -> StageSummary:
    """What a stage served from the result cache reports: no usage, no cost, no resources."""
    return attrs.evolve(
        original,
        method=f"cache:{original.method}",
        usage=Usage(),
        cost=Cost(),
        cpu_ms=0.0,
        peak_rss_kb=0,
        queue_ms=0.0,
    )
