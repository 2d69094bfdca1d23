"""The orchestrator's async runner: carries out the plan, stage by stage, durably.

For each ready stage it stores the stage input by reference, records the new attempt, runs
handshake → process on a worker endpoint, commits the stage, its checkpoint and its event in
one transaction, and only then acknowledges to the worker. A stage recorded as running when
an execution is resumed was in flight when its process died: it runs once more, as a new
attempt; stages already committed are never run again.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
import attrs

from .._clock import Clock, IdFactory
from .._exceptions import (
    AIFactoryError,
    ConflictError,
    HandshakeRejectedError,
    StageFailedError,
)
from ..models import (
    Checkpoint,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    StageRun,
    StageSpec,
    StageStatus,
    StorageRef,
    Template,
)
from ..protocol.codec import dumps, structure, unstructure
from ..protocol.messages import (
    AcknowledgeRequest,
    HandshakeReply,
    HandshakeRequest,
    ProcessReply,
    ProcessRequest,
    StageInput,
)
from ..state.sqlite import SQLiteStore
from ..storage import BlobStore
from ..transports.workers import WorkerTransport
from ..workers.host import STAGE_NAMESPACE
from . import planning
from .costing import StoragePrices
from .registry import WorkerRegistry
from .retry import RetryPolicy
from .sink import Artifact, ExecutionReport, ExecutionSink

__all__ = ["Orchestrator"]


@attrs.define
class _Live:
    """The in-memory side of one running execution (one per process)."""

    execution: Execution
    runs: dict[str, StageRun]
    outputs: dict[str, StorageRef]
    version: int
    seq: int
    done: anyio.Event
    stop: bool = False
    crash: str | None = None


class Orchestrator:
    """Runs executions of pipeline templates on registered workers.

    Use as an async context manager: background executions started with `launch` run in its
    task group and are cancelled when it exits (they can be resumed later).
    """

    def __init__(
        self,
        store: SQLiteStore,
        blobs: BlobStore,
        registry: WorkerRegistry,
        sink: ExecutionSink,
        *,
        clock: Clock,
        ids: IdFactory,
        retry: RetryPolicy | None = None,
        prices: StoragePrices | None = None,
        max_workers: int = 4,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.registry = registry
        self.sink = sink
        self.clock = clock
        self.ids = ids
        self.retry = retry or RetryPolicy()
        self.prices = prices or StoragePrices()
        self.max_workers = max_workers
        self._live: dict[str, _Live] = {}
        self._changed: dict[str, anyio.Event] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None

    # -- creating and starting -----------------------------------------------------------------

    def create(
        self,
        template: Template,
        parameters: Mapping[str, Any],
        *,
        context: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        client_id: str | None = None,
    ) -> Execution:
        """Record a new pending execution of `template`.

        Raises `BadInputError` for an invalid template and `WorkerError` when one of its
        workers has no endpoint.
        """
        planning.validate_template(template)
        self.registry.require(s.worker for s in template.stages)
        now = self.clock.now()
        execution = Execution(
            id=self.ids.new("exec"),
            request_id=request_id,
            client_id=client_id,
            template=template,
            parameters=dict(parameters),
            status=ExecutionStatus.PENDING,
            created_at=now,
            updated_at=now,
            stages_total=len(template.stages),
            context=dict(context or {}),
        )
        runs = [
            StageRun(execution.id, s.id, s.worker, StageStatus.PENDING) for s in template.stages
        ]
        self.store.add_execution(execution, runs)
        return execution

    def launch(self, execution_id: str) -> None:
        """Run (or resume) an execution in the background. Raises `ConflictError` if running."""
        if self._tg is None:
            raise ConflictError("the orchestrator is not started (use `async with`)")
        live = self._prepare(execution_id)
        self._tg.start_soon(self._drive, live, name=f"execution {execution_id}")

    async def run(self, execution_id: str) -> Execution:
        """Run (or resume) an execution to its end and return its final record.

        Raises `ConflictError` if it is finished or already running in this process.
        """
        return await self._drive(self._prepare(execution_id))

    def is_running(self, execution_id: str) -> bool:
        """Whether this process is running the execution now."""
        return execution_id in self._live

    async def wait(self, execution_id: str) -> Execution:
        """Wait until an execution running here ends; return its stored record."""
        live = self._live.get(execution_id)
        if live is not None:
            await live.done.wait()
        return self.store.get_execution(execution_id)

    async def changed(self, execution_id: str, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) until the execution has new events."""
        event = self._changed.setdefault(execution_id, anyio.Event())
        with anyio.move_on_after(timeout_s):
            await event.wait()

    async def follow(self, execution_id: str, after: int = 0) -> AsyncIterator[ExecutionEvent]:
        """Yield the execution's events from `after` on, until it has finished."""
        while True:
            events = self.store.list_events(execution_id, after)
            for event in events:
                after = event.seq
                yield event
            if not events:
                if self.store.get_execution(execution_id).status.is_final:
                    return
                await self.changed(execution_id, 1.0)

    # -- driving an execution -------------------------------------------------------------------

    def _prepare(self, execution_id: str) -> _Live:
        if execution_id in self._live:
            raise ConflictError(f"execution {execution_id} is already running")
        execution = self.store.get_execution(execution_id)
        if execution.status.is_final:
            raise ConflictError(
                f"execution {execution_id} is already {execution.status.value}",
                details={"status": execution.status.value},
            )
        checkpoint = self.store.latest_checkpoint(execution_id)
        live = _Live(
            execution=execution,
            runs={r.stage_id: r for r in self.store.get_stage_runs(execution_id)},
            outputs=dict(checkpoint.completed) if checkpoint else {},
            version=checkpoint.version if checkpoint else 0,
            seq=self.store.last_event_seq(execution_id),
            done=anyio.Event(),
        )
        self._live[execution_id] = live
        return live

    def _event(
        self, live: _Live, kind: str, stage_id: str | None = None, **data: Any
    ) -> ExecutionEvent:
        live.seq += 1
        return ExecutionEvent(live.execution.id, live.seq, self.clock.now(), kind, stage_id, data)

    def _touch(self, execution_id: str) -> None:
        event = self._changed.pop(execution_id, None)
        if event is not None:
            event.set()

    def _save(self, live: _Live, *events: ExecutionEvent, **changes: Any) -> None:
        live.execution = attrs.evolve(live.execution, updated_at=self.clock.now(), **changes)
        with self.store.transaction():
            self.store.update_execution(live.execution)
            self.store.add_events(events)
        self._touch(live.execution.id)

    async def _drive(self, live: _Live) -> Execution:
        try:
            resumed = live.execution.started_at is not None
            kind = "execution.resumed" if resumed else "execution.started"
            self._save(
                live,
                self._event(live, kind),
                status=ExecutionStatus.RUNNING,
                started_at=live.execution.started_at or self.clock.now(),
            )
            try:
                await self._run_stages(live)
            except AIFactoryError as exc:
                live.crash = exc.message
            except Exception as exc:
                # An unexpected error (a bug, an unwrapped library error) ends this execution
                # as failed instead of tearing down every other execution in the task group.
                live.crash = f"internal error: {exc!r}"
            return await self._finish(live)
        finally:
            del self._live[live.execution.id]
            live.done.set()
            self._touch(live.execution.id)

    async def _run_stages(self, live: _Live) -> None:
        template = live.execution.template
        limiter = anyio.CapacityLimiter(max(1, self.max_workers))
        while not live.stop:
            statuses = {
                sid: StageStatus.PENDING if r.status is StageStatus.RUNNING else r.status
                for sid, r in live.runs.items()
            }
            for stage in planning.blocked_stages(template, statuses):
                self._skip(live, stage, "a stage it depends on did not succeed")
                statuses[stage.id] = StageStatus.SKIPPED
            ready = planning.ready_stages(template, statuses)
            runnable = []
            for stage in ready:
                if planning.evaluate_condition(stage.condition, live.execution.parameters):
                    runnable.append(stage)
                else:
                    self._skip(live, stage, f"condition {stage.condition!r} is false")
            if not ready:
                return
            async with anyio.create_task_group() as tg:
                for stage in runnable:
                    tg.start_soon(self._run_stage_limited, live, stage, limiter)

    async def _run_stage_limited(
        self, live: _Live, stage: StageSpec, limiter: anyio.CapacityLimiter
    ) -> None:
        async with limiter:
            await self._run_stage(live, stage)

    def _skip(self, live: _Live, stage: StageSpec, reason: str) -> None:
        run = attrs.evolve(live.runs[stage.id], status=StageStatus.SKIPPED, error=reason)
        live.runs[stage.id] = run
        with self.store.transaction():
            self.store.put_stage_run(run)
            self._save(
                live,
                self._event(live, "stage.skipped", stage.id, reason=reason),
                stages_done=live.execution.stages_done + 1,
            )

    def _stage_input(self, live: _Live, stage: StageSpec) -> StorageRef:
        params = planning.merge_parameters(live.execution.parameters, stage.parameters)
        bindings = planning.bind_inputs(stage, live.outputs, params, live.execution.context)
        body = dumps(unstructure(StageInput(stage.action, params, bindings)))
        key = f"{live.execution.id}/{stage.id}/input.json"
        return self.blobs.put(
            body, namespace=STAGE_NAMESPACE, key=key, media_type="application/json"
        )

    async def _run_stage(self, live: _Live, stage: StageSpec) -> None:
        execution_id = live.execution.id
        input_ref = self._stage_input(live, stage)
        idem = planning.idempotency_key(execution_id, stage.id, input_ref.sha256)
        while True:
            run = attrs.evolve(
                live.runs[stage.id],
                status=StageStatus.RUNNING,
                attempt=live.runs[stage.id].attempt + 1,
                input_ref=input_ref,
                started_at=self.clock.now(),
                handshake_id=None,
            )
            self.store.start_stage(run)
            live.runs[stage.id] = run
            self.store.add_events(
                [self._event(live, "stage.started", stage.id, attempt=run.attempt)]
            )
            self._touch(execution_id)
            request = HandshakeRequest(
                execution_id, stage.id, run.attempt, stage.worker, stage.action, input_ref, idem
            )
            try:
                endpoint, accepted = await self._handshake(request)
                run = attrs.evolve(run, handshake_id=accepted.handshake_id)
                reply = await endpoint.process(
                    ProcessRequest(
                        execution_id, stage.id, run.attempt, accepted.handshake_id, input_ref
                    )
                )
            except AIFactoryError as exc:
                if not self.retry.should_retry(run.attempt, exc):
                    self._fail_stage(live, stage, run, exc)
                    return
                delay = self.retry.delay_s(run.attempt)
                live.runs[stage.id] = attrs.evolve(run, error=exc.message)
                self.store.put_stage_run(live.runs[stage.id])
                event = self._event(
                    live,
                    "stage.retrying",
                    stage.id,
                    attempt=run.attempt,
                    error=exc.message,
                    delay_s=delay,
                )
                self.store.add_events([event])
                await anyio.sleep(delay)
                continue
            self._commit_stage(live, stage, run, reply)
            try:
                await endpoint.acknowledge(
                    AcknowledgeRequest(
                        execution_id,
                        stage.id,
                        run.attempt,
                        reply.handshake_id,
                        "completed",
                        reply.output_ref,
                    )
                )
            except AIFactoryError as exc:
                # The stage is durably committed; a lost acknowledge only leaves the worker
                # holding state it will age out. Record it and carry on.
                self.store.add_events(
                    [self._event(live, "stage.acknowledge_failed", stage.id, error=exc.message)]
                )
            return

    async def _handshake(self, request: HandshakeRequest) -> tuple[WorkerTransport, HandshakeReply]:
        reasons: list[str] = []
        for endpoint in self.registry.candidates(request.worker):
            reply = await endpoint.handshake(request)
            if reply.accepted:
                return endpoint, reply
            reasons.append(reply.reason or "rejected")
        raise HandshakeRejectedError(
            f"no {request.worker} endpoint accepted stage {request.stage_id}: "
            + "; ".join(reasons),
            details={"stage_id": request.stage_id, "reasons": reasons},
        )

    def _commit_stage(
        self, live: _Live, stage: StageSpec, run: StageRun, reply: ProcessReply
    ) -> None:
        summary = reply.summary
        cost = summary.cost + self.prices.cost(summary.usage)
        run = attrs.evolve(
            run,
            status=StageStatus.SUCCEEDED,
            output_ref=reply.output_ref,
            summary=unstructure(summary),
            usage=summary.usage,
            cost=cost,
            error=None,
            finished_at=self.clock.now(),
        )
        outputs = live.outputs | {stage.id: reply.output_ref}
        execution = attrs.evolve(
            live.execution,
            usage=live.execution.usage + summary.usage,
            cost=live.execution.cost + cost,
            stages_done=live.execution.stages_done + 1,
            updated_at=self.clock.now(),
        )
        checkpoint = Checkpoint(execution.id, live.version + 1, outputs, self.clock.now())
        event = self._event(
            live,
            "stage.succeeded",
            stage.id,
            attempt=run.attempt,
            method=summary.method,
            cost_usd=str(cost.total_usd),
            tokens=summary.usage.tokens,
            progress=execution.progress,
        )
        self.store.finish_stage(run, execution, checkpoint, [event])
        live.runs[stage.id], live.outputs, live.execution = run, outputs, execution
        live.version += 1
        if not summary.continue_pipeline:
            live.stop = True
        self._touch(execution.id)

    def _fail_stage(
        self, live: _Live, stage: StageSpec, run: StageRun, exc: AIFactoryError
    ) -> None:
        run = attrs.evolve(
            run, status=StageStatus.FAILED, error=exc.message, finished_at=self.clock.now()
        )
        execution = attrs.evolve(
            live.execution, stages_done=live.execution.stages_done + 1, updated_at=self.clock.now()
        )
        event = self._event(
            live, "stage.failed", stage.id, attempt=run.attempt, error=exc.message, code=exc.code
        )
        self.store.finish_stage(run, execution, None, [event])
        live.runs[stage.id], live.execution = run, execution
        if stage.required:
            live.stop = True
        self._touch(execution.id)

    async def _finish(self, live: _Live) -> Execution:
        template = live.execution.template
        for stage in template.stages:
            if live.runs[stage.id].status is StageStatus.PENDING:
                self._skip(live, stage, "the pipeline stopped before this stage")
        failed = [
            s.id
            for s in template.stages
            if s.required and live.runs[s.id].status is StageStatus.FAILED
        ]
        errors = [f"{sid}: {live.runs[sid].error}" for sid in failed]
        if live.crash is not None:
            errors.append(live.crash)
        status = ExecutionStatus.FAILED if errors else ExecutionStatus.COMPLETED
        error = "; ".join(errors) or None
        artifacts = () if errors else self._artifacts(live)
        self._save(
            live,
            self._event(live, f"execution.{status.value}", error=error),
            status=status,
            error=error,
            finished_at=self.clock.now(),
        )
        await self.sink.execution_finished(ExecutionReport(live.execution, artifacts))
        return live.execution

    def _artifacts(self, live: _Live) -> tuple[Artifact, ...]:
        template = live.execution.template
        chosen = [s for s in template.stages if s.deliverable]
        if not chosen:
            ids = {s.id for s in template.stages}
            used = set().union(*(planning.stage_dependencies(s, ids) for s in template.stages))
            chosen = [s for s in template.stages if s.id not in used]
        found: list[Artifact] = []
        for stage in chosen:
            ref = live.outputs.get(stage.id)
            if ref is None:
                continue
            try:
                output = json.loads(self.blobs.get(ref))
            except ValueError as exc:
                raise StageFailedError(f"stage {stage.id} output is not JSON") from exc
            for item in output.get("artifacts", []) if isinstance(output, dict) else []:
                found.append(
                    Artifact(
                        stage.id,
                        str(item.get("type", "file")),
                        str(item["name"]),
                        str(item.get("media_type", "application/octet-stream")),
                        structure(item["ref"], StorageRef),
                        {
                            k: v
                            for k, v in item.items()
                            if k not in ("ref", "type", "name", "media_type")
                        },
                    )
                )
        return tuple(found)
