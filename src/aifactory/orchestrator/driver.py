"""`Driver`: one execution's life in this process, from its start to its report.

It records the start (with the first stage's first attempt), lets the scheduler run the
stages under the execution's time limit, then finishes it: stages cut short are cancelled,
pending ones skipped, the outcome (completed, partially completed, failed or cancelled)
recorded, the deliverables collected and the sink told; only then is the lease handed back
as finished. `report` tells the sink again about an execution whose report was lost.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import attrs

from .._exceptions import AIFactoryError, ConflictError, LeaseLostError
from .._logs import log_context
from .._tracing import Attributes
from ..models import Execution, ExecutionStatus, StageSpec, StageStatus
from ..state import ExecutionWrite
from .artifacts import collect_artifacts
from .live import Engine, Live, committed_outputs
from .records import Records, StageWork
from .scheduler import StageScheduler
from .sink import Artifact, ExecutionReport, ExecutionSink

__all__ = ["Driver"]


class Driver:
    """Drives executions of this process to their end and reports them to `sink`.

    `running` is the orchestrator's map of the executions running here; an execution
    leaves it when its drive ends.
    """

    def __init__(
        self,
        engine: Engine,
        records: Records,
        scheduler: StageScheduler,
        sink: ExecutionSink,
        running: dict[str, Live],
        max_workers: int,
    ) -> None:
        self.e = engine
        self._scheduler = scheduler
        self._records = records
        self.sink = sink
        self._running = running
        self.max_workers = max_workers

    async def drive(self, live: Live) -> Execution:
        execution = live.execution
        attributes: Attributes = {
            "aifactory.execution_id": execution.id,
            "aifactory.template": execution.template.name,
            "aifactory.run": execution.runs + 1,
        }
        # A span of the trace the execution was created in, whichever replica runs it.
        span = self.e.tracer.span(
            f"execution {execution.template.name}", attributes, parent=execution.trace
        )
        with log_context(execution_id=execution.id), span as traced:
            final = await self._drive(live)
            failed = final.status is ExecutionStatus.FAILED
            self.e.tracer.outcome(traced, final.status.value, final.error if failed else None)
            return final

    async def _drive(self, live: Live) -> Execution:
        execution = live.execution
        try:
            kind = "execution.resumed" if execution.started_at is not None else "execution.started"
            # Durable before anything reaches a worker.
            first: list[tuple[StageSpec, StageWork]] = []
            try:
                if execution.client_id is not None:
                    # Before any stage: every blob of the execution gets its client's data key.
                    await self.e.blobs.abind_owner(execution.id, execution.client_id)
                first = await self._records.start(
                    live,
                    kind,
                    data={"run": execution.runs + 1},
                    status=ExecutionStatus.RUNNING,
                    started_at=execution.started_at or self.e.clock.now(),
                    runs=execution.runs + 1,
                )
            except LeaseLostError as exc:
                raise ConflictError(
                    f"execution {execution.id} was started by another process",
                    details={"owner": None},
                ) from exc
            except AIFactoryError as exc:
                live.crash = f"cannot record the start: {exc.message}"
            limit_ms = execution.resources.get("timeout_ms")
            limit = limit_ms / 1000 if limit_ms else execution.template.max_execution_time_s
            with live.scope:
                live.scope.deadline = anyio.current_time() + limit
                try:
                    if live.crash is None:
                        width = execution.resources.get("max_workers") or self.max_workers
                        await self._scheduler.run(live, int(width), first)
                except AIFactoryError as exc:
                    live.crash = exc.message
                except Exception as exc:
                    # An unexpected error ends this execution as failed instead of tearing
                    # down every other execution in the task group.
                    live.crash = f"internal error: {exc!r}"
            if live.lost:
                # Another replica took it over: it finishes there; nothing more is ours.
                return await self.e.store.get_execution(execution.id)
            if live.scope.cancelled_caught and not live.cancelled:
                live.crash = f"the execution ran out of its {limit:g} s time limit"
            with anyio.CancelScope(shield=True):  # finishing must not be cut short
                final = await self.finish(live)
            return final
        finally:
            if self._running.get(execution.id) is live:
                del self._running[execution.id]
            live.done.set()
            self.e.touch(execution.id)

    async def finish(self, live: Live) -> Execution:
        if live.execution.status is ExecutionStatus.COMPLETED:
            # The last stage's commit recorded the completion.
            delivered = await collect_artifacts(live.plan, live.outputs, self.e.blobs)
            await self._report(live, delivered)
            return live.execution
        template = live.execution.template
        for stage in template.stages:
            run = live.runs[stage.id]
            if run.status is StageStatus.RUNNING:  # stopped mid-attempt (cancel, time limit)
                interrupted = attrs.evolve(
                    run, status=StageStatus.CANCELLED, finished_at=self.e.clock.now()
                )
                await self._records.put_run(live, interrupted)
                await self.e.quota.release(live.execution, stage.id)
            elif run.status is StageStatus.PENDING:
                await self._scheduler.skip(live, stage, "the pipeline stopped before this stage")
        failed = [
            s.id
            for s in template.stages
            if s.required and live.runs[s.id].status is StageStatus.FAILED
        ]
        errors = [f"{sid}: {live.runs[sid].error}" for sid in failed]
        if live.crash is not None:
            errors.append(live.crash)
        if live.cancelled:
            status = ExecutionStatus.CANCELLED
        else:
            status = ExecutionStatus.FAILED if errors else ExecutionStatus.COMPLETED
        artifacts: tuple[Artifact, ...] = ()
        data: dict[str, Any] = {}
        if status is ExecutionStatus.COMPLETED:
            artifacts = await collect_artifacts(live.plan, live.outputs, self.e.blobs)
        elif status is ExecutionStatus.FAILED and template.allow_partial and live.crash is None:
            # Partial completion: only required stages failed, and what finished has
            # something to deliver.
            artifacts = await collect_artifacts(live.plan, live.outputs, self.e.blobs)
            if artifacts:
                status = ExecutionStatus.COMPLETED
                errors[0] = f"completed partially; {errors[0]}"
                data["partial"] = True
        error = "; ".join(errors) or None
        data["error"] = error
        await self._save(
            live,
            f"execution.{status.value}",
            data=data,
            status=status,
            error=error,
            finished_at=self.e.clock.now(),
        )
        await self._report(live, artifacts)
        return live.execution

    async def _report(self, live: Live, artifacts: tuple[Artifact, ...]) -> None:
        self.e.telemetry.execution_finished(live.execution)
        await self.sink.execution_finished(ExecutionReport(live.execution, artifacts))
        if live.lease is not None:  # reported: nobody need take it up again
            await self.e.store.release_leases(
                self.e.owner, {live.execution.id: live.lease}, finished=True
            )

    async def _save(self, live: Live, kind: str, **changes: Any) -> None:
        await self._records.execution(live, kind, **changes)
        self.e.touch(live.execution.id)

    async def in_background(self, live: Live) -> None:
        try:
            await self.drive(live)
        except Exception as exc:
            if isinstance(exc, LeaseLostError) or (
                isinstance(exc, ConflictError) and "owner" in exc.details
            ):
                return  # another replica runs it (took it over, or started it first)
            # Finishing failed (the sink or the state store broke): the execution stays
            # running in the store, resumable, and the other executions go on.
            event = live.event(self.e.clock, "execution.finish_failed", error=repr(exc))
            write = ExecutionWrite(live.execution.id, events=(event,), lease=live.lease)
            with anyio.CancelScope(shield=True), contextlib.suppress(AIFactoryError):
                await self.e.store.record(write)

    async def report(self, execution_id: str) -> Execution:
        """Report a finished execution to the sink again, with the artifacts it delivered.

        For an execution whose report was lost: the process stopped, or the sink failed,
        between its final commit and the end of its report. Sinks are idempotent, so a
        report that did arrive changes nothing. Raises `NotFoundError`, and `ConflictError`
        if the execution has not finished.
        """
        execution = await self.e.store.get_execution(execution_id)
        if not execution.status.is_final:
            raise ConflictError(
                f"execution {execution_id} has not finished; it is {execution.status.value}",
                details={"status": execution.status.value},
            )
        artifacts: tuple[Artifact, ...] = ()
        if execution.status is ExecutionStatus.COMPLETED:
            outputs = committed_outputs(await self.e.store.get_stage_runs(execution_id))
            plan = self.e.plan(execution.template)
            artifacts = await collect_artifacts(plan, outputs, self.e.blobs)
        await self.sink.execution_finished(ExecutionReport(execution, artifacts))
        return execution
