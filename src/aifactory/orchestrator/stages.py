"""One stage, from its input to its commit: cache, attempts, timeouts, heartbeats, quota.

Each attempt is recorded before it starts (so a crash leaves it visible as in flight), asks
the worker endpoints in turn until one accepts (waiting up to schedule-to-start while they are
busy), reserves the estimated cost before processing (so before any model is called), then
processes within start-to-close while watching the worker's heartbeats. A succeeded attempt
is committed with its checkpoint and event in one transaction, fenced on the attempt number,
and only then acknowledged to the worker.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import attrs

from .._exceptions import (
    AIFactoryError,
    HandshakeRejectedError,
    InputRejectedError,
    StageTimeoutError,
    TransportError,
)
from ..models import Checkpoint, Cost, StageRun, StageSpec, StageStatus, StorageRef, Usage
from ..protocol.codec import dumps, structure, unstructure
from ..protocol.messages import (
    AcknowledgeRequest,
    HandshakeReply,
    HandshakeRequest,
    ProcessReply,
    ProcessRequest,
    StageInput,
    StageSummary,
)
from ..transports.workers import WorkerTransport
from ..workers.host import STAGE_NAMESPACE
from . import planning
from .live import Engine, Live

__all__ = ["StageRunner"]


class StageRunner:
    """Runs stages of live executions on the engine's workers."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def _emit(self, live: Live, kind: str, stage_id: str | None, **data: Any) -> None:
        self.e.store.add_events([live.event(self.e.clock, kind, stage_id, **data)])
        self.e.touch(live.execution.id)

    async def run(self, live: Live, stage: StageSpec) -> None:
        """Run `stage` to success or final failure; never raises except on cancellation."""
        try:
            await self._run(live, stage)
        except Exception as exc:
            error = exc if isinstance(exc, AIFactoryError) else None
            message = error.message if error else f"internal error: {exc!r}"
            self.fail(live, stage, message, error.code if error else "internal_error")

    async def _run(self, live: Live, stage: StageSpec) -> None:
        e, execution = self.e, live.execution
        params = planning.merge_parameters(execution.parameters, stage.parameters)
        bindings = planning.bind_inputs(stage, live.outputs, params, execution.context)
        body = dumps(unstructure(StageInput(stage.action, params, bindings)))
        input_ref = e.blobs.put(
            body,
            namespace=STAGE_NAMESPACE,
            key=f"{execution.id}/{stage.id}/input.json",
            media_type="application/json",
        )
        cache_key = await self._cache_key(live, stage, params, bindings)
        if cache_key is not None and await self._from_cache(live, stage, input_ref, cache_key):
            return
        idem = planning.idempotency_key(execution.id, stage.id, input_ref.sha256)
        retry = e.retry.for_stage(stage.policy)
        avoid: list[WorkerTransport] = []

        async def announce(attempt: int, error: BaseException, delay: float) -> None:
            message = error.message if isinstance(error, AIFactoryError) else repr(error)
            self._emit(
                live,
                "stage.retrying",
                stage.id,
                error=message,
                delay_s=round(delay, 6),
                attempt=live.runs[stage.id].attempt,
            )

        async for attempt in retry.retrying(sleep=e.sleep, rng=e.rng, before_sleep=announce):
            with attempt:
                reply, endpoint = await self._attempt(live, stage, input_ref, idem, avoid)
        self._commit(live, stage, reply)
        if cache_key is not None:
            summary = live.runs[stage.id].summary
            e.store.cache_put(
                cache_key,
                stage.worker,
                reply.output_ref,
                summary,
                e.clock.now(),
                e.clock.now() + timedelta(seconds=e.cache_ttl_s),
            )
        await self._acknowledge(live, stage, endpoint, reply)

    def _start(self, live: Live, stage: StageSpec, input_ref: StorageRef) -> StageRun:
        run = attrs.evolve(
            live.runs[stage.id],
            status=StageStatus.RUNNING,
            attempt=live.runs[stage.id].attempt + 1,
            input_ref=input_ref,
            handshake_id=None,
            error=None,
            started_at=self.e.clock.now(),
        )
        with self.e.store.transaction():
            self.e.store.start_stage(run)
            self.e.store.add_events(
                [live.event(self.e.clock, "stage.started", stage.id, attempt=run.attempt)]
            )
        live.runs[stage.id] = run
        self.e.touch(live.execution.id)
        return run

    async def _attempt(
        self,
        live: Live,
        stage: StageSpec,
        input_ref: StorageRef,
        idem: str,
        avoid: list[WorkerTransport],
    ) -> tuple[ProcessReply, WorkerTransport]:
        run = self._start(live, stage, input_ref)
        execution_id = live.execution.id
        request = HandshakeRequest(
            execution_id, stage.id, run.attempt, stage.worker, stage.action, input_ref, idem
        )
        endpoint, accepted = await self._handshake(stage, request, avoid)
        live.runs[stage.id] = attrs.evolve(run, handshake_id=accepted.handshake_id)
        self.e.quota.reserve(live.execution, stage.id, accepted.estimate.cost_usd)
        try:
            reply = await self._process(
                live,
                stage,
                endpoint,
                ProcessRequest(
                    execution_id, stage.id, run.attempt, accepted.handshake_id, input_ref
                ),
            )
        except BaseException as exc:
            self.e.quota.release(live.execution, stage.id)
            if isinstance(exc, StageTimeoutError | TransportError):
                avoid.append(endpoint)  # the next attempt goes to another endpoint if any
            if isinstance(exc, AIFactoryError):
                live.runs[stage.id] = attrs.evolve(live.runs[stage.id], error=exc.message)
                self.e.store.put_stage_run(live.runs[stage.id])
            raise
        return reply, endpoint

    async def _handshake(
        self, stage: StageSpec, request: HandshakeRequest, avoid: list[WorkerTransport]
    ) -> tuple[WorkerTransport, HandshakeReply]:
        e = self.e
        limit = stage.policy.schedule_to_start_s or e.timeouts.schedule_to_start_s
        deadline = None if limit is None else anyio.current_time() + limit
        pause = 0.005
        while True:
            reasons: list[str] = []
            for endpoint in await e.registry.candidates(stage.worker, avoid):
                try:
                    reply = await endpoint.handshake(request)
                except TransportError as exc:
                    e.registry.mark_unhealthy(endpoint)
                    reasons.append(exc.message)
                    continue
                if reply.accepted:
                    return endpoint, reply
                if not reply.retryable:
                    raise InputRejectedError(
                        f"{stage.worker} refused the input of stage {stage.id}: {reply.reason}",
                        details={"stage_id": stage.id, "reason": reply.reason},
                    )
                reasons.append(reply.reason or "rejected")
            if deadline is not None and anyio.current_time() + pause > deadline:
                raise StageTimeoutError(
                    f"no {stage.worker} endpoint accepted stage {stage.id} within {limit:g} s"
                    f" ({'; '.join(reasons) or 'no healthy endpoint'})",
                    details={"timeout": "schedule_to_start", "stage_id": stage.id},
                )
            if not reasons and deadline is None:
                raise HandshakeRejectedError(
                    f"no healthy {stage.worker} endpoint for stage {stage.id}",
                    details={"stage_id": stage.id},
                )
            await anyio.sleep(pause)  # busy workers free their slots in real time
            pause = min(pause * 2, 0.5)

    async def _process(
        self, live: Live, stage: StageSpec, endpoint: WorkerTransport, request: ProcessRequest
    ) -> ProcessReply:
        e = self.e
        heartbeat = stage.policy.heartbeat_s or e.timeouts.heartbeat_s
        limit = stage.policy.start_to_close_s or e.timeouts.start_to_close_s
        last_beat = anyio.current_time()
        silent = False
        result: ProcessReply | None = None
        error: Exception | None = None

        async def beat(percent: float, message: str) -> None:
            nonlocal last_beat
            last_beat = anyio.current_time()
            self._emit(
                live,
                "stage.progress",
                stage.id,
                percent=percent,
                message=message,
                attempt=request.attempt,
            )

        async def watch(scope: anyio.CancelScope) -> None:
            nonlocal silent
            assert heartbeat is not None
            while True:
                await anyio.sleep(max(heartbeat / 4, 0.001))
                if anyio.current_time() - last_beat > heartbeat:
                    silent = True
                    scope.cancel()
                    return

        with anyio.move_on_after(limit) as deadline:
            async with anyio.create_task_group() as tg:
                if heartbeat:
                    tg.start_soon(watch, tg.cancel_scope)
                try:
                    result = await endpoint.process(request, beat)
                except Exception as exc:
                    error = exc
                tg.cancel_scope.cancel()
        if error is not None:
            raise error
        if silent:
            raise StageTimeoutError(
                f"stage {stage.id} sent no heartbeat for {heartbeat:g} s",
                details={"timeout": "heartbeat", "stage_id": stage.id},
            )
        if deadline.cancelled_caught or result is None:
            raise StageTimeoutError(
                f"stage {stage.id} did not finish within {limit:g} s",
                details={"timeout": "start_to_close", "stage_id": stage.id},
            )
        return result

    def _commit(
        self, live: Live, stage: StageSpec, reply: ProcessReply, cached: bool = False
    ) -> None:
        e, summary = self.e, reply.summary
        cost = summary.cost + e.prices.cost(summary.usage)
        run = attrs.evolve(
            live.runs[stage.id],
            status=StageStatus.SUCCEEDED,
            output_ref=reply.output_ref,
            summary=unstructure(summary),
            usage=summary.usage,
            cost=cost,
            error=None,
            finished_at=e.clock.now(),
        )
        outputs = live.outputs | {stage.id: reply.output_ref}
        execution = attrs.evolve(
            live.execution,
            usage=live.execution.usage + summary.usage,
            cost=live.execution.cost + cost,
            stages_done=live.execution.stages_done + 1,
            updated_at=e.clock.now(),
        )
        checkpoint = Checkpoint(execution.id, live.version + 1, outputs, e.clock.now())
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
        )
        costs = live.event(
            e.clock,
            "execution.cost",
            None,
            total_usd=str(execution.cost.total_usd),
            tokens=execution.usage.tokens,
        )
        e.store.finish_stage(run, execution, checkpoint, [done, costs])
        live.runs[stage.id], live.outputs, live.execution = run, outputs, execution
        live.version += 1
        e.quota.settle(execution, stage.id, cost.total_usd)
        if not summary.continue_pipeline:
            live.stop = True
        e.touch(execution.id)

    async def _acknowledge(
        self, live: Live, stage: StageSpec, endpoint: WorkerTransport, reply: ProcessReply
    ) -> None:
        run = live.runs[stage.id]
        try:
            await endpoint.acknowledge(
                AcknowledgeRequest(
                    live.execution.id,
                    stage.id,
                    run.attempt,
                    reply.handshake_id,
                    "completed",
                    reply.output_ref,
                )
            )
        except AIFactoryError as exc:
            # The stage is durably committed; a lost acknowledge only leaves the worker
            # holding state it ages out. Record it and carry on.
            self._emit(live, "stage.acknowledge_failed", stage.id, error=exc.message)

    async def _cache_key(
        self, live: Live, stage: StageSpec, params: dict[str, Any], bindings: dict[str, Any]
    ) -> str | None:
        if not stage.policy.cache or live.execution.resources.get("cache") is False:
            return None
        cacheable, version = await self.e.registry.cacheable(stage.worker)
        if not cacheable:
            return None
        return planning.result_cache_key(stage.worker, version, stage.action, params, bindings)

    async def _from_cache(
        self, live: Live, stage: StageSpec, input_ref: StorageRef, key: str
    ) -> bool:
        hit = self.e.store.cache_get(key, self.e.clock.now())
        if hit is None:
            return False
        output_ref, summary_data = hit
        if not self.e.blobs.exists(output_ref):
            return False  # the cached blob is gone: compute afresh
        original = structure(summary_data, StageSummary)
        summary = attrs.evolve(
            original,
            method=f"cache:{original.method}",
            usage=Usage(),
            cost=Cost(),
        )
        self._start(live, stage, input_ref)
        reply = ProcessReply("cache", live.runs[stage.id].attempt, output_ref, summary)
        self._commit(live, stage, reply, cached=True)
        return True

    def fail(self, live: Live, stage: StageSpec, message: str, code: str) -> None:
        """Record a stage's final failure; a required stage stops the pipeline."""
        e = self.e
        run = attrs.evolve(
            live.runs[stage.id],
            status=StageStatus.FAILED,
            error=message,
            finished_at=e.clock.now(),
        )
        execution = attrs.evolve(
            live.execution, stages_done=live.execution.stages_done + 1, updated_at=e.clock.now()
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
        with e.store.transaction():
            e.store.put_stage_run(run)
            e.store.update_execution(execution)
            e.store.add_events([event])
        e.quota.release(execution, stage.id)
        live.runs[stage.id], live.execution = run, execution
        if stage.required:
            live.stop = True
        e.touch(execution.id)
