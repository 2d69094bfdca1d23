"""Executions as the account side shows them: status, stages, events, metrics and control."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import attrs

from .._clock import Clock
from .._exceptions import BadInputError, ConflictError, NotFoundError, QuotaExceededError
from ..models import (
    Execution,
    ExecutionEvent,
    ExecutionOwner,
    ExecutionStatus,
    Principal,
    RequestStatus,
    StageRun,
    WorkerStatus,
)
from ..orchestrator import Orchestrator
from ..orchestrator.leasing import is_gone
from ..state import Lease, Store
from .audit import AuditLog
from .requests import RequestService

__all__ = ["ExecutionService"]


def _ms(run: StageRun) -> int | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return int((run.finished_at - run.started_at).total_seconds() * 1000)


#: The events that end a run of an execution.
_ENDINGS = frozenset(f"execution.{s.value}" for s in ExecutionStatus if s.is_final)


class ExecutionService:
    """Reading and steering executions, with the caller's permissions applied."""

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        clock: Clock,
        orchestrator: Orchestrator,
        requests: RequestService,
    ) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self.orchestrator = orchestrator
        self.requests = requests

    async def _own(self, principal: Principal, execution_id: str) -> Execution:
        execution = await self.store.get_execution(execution_id)
        if not principal.role.is_staff and execution.client_id != principal.client_id:
            raise NotFoundError(f"no execution {execution_id!r}", details={"id": execution_id})
        return execution

    async def get(self, principal: Principal, execution_id: str) -> Execution:
        """One execution. Raises `NotFoundError` (also for another client's)."""
        return await self._own(principal, execution_id)

    async def stages(self, principal: Principal, execution_id: str) -> list[StageRun]:
        """The stage runs of an execution, in template order."""
        execution = await self._own(principal, execution_id)
        runs = {r.stage_id: r for r in await self.store.get_stage_runs(execution_id)}
        return [runs[s.id] for s in execution.template.stages if s.id in runs]

    async def events(
        self,
        principal: Principal,
        execution_id: str,
        after: int = 0,
        limit: int = 1000,
        wait_s: float = 0,
    ) -> list[ExecutionEvent]:
        """Events of an execution after sequence number `after`.

        With `wait_s` (at most 25 s) and nothing new yet, the call waits for news before
        answering (long polling), so remote clients follow an execution without spending
        their rate limit on empty polls.
        """
        await self._own(principal, execution_id)
        limit = max(1, min(limit, 1000))
        deadline = anyio.current_time() + max(0.0, min(float(wait_s), 25.0))
        while True:
            found = await self.store.list_events(execution_id, after, limit)
            remaining = deadline - anyio.current_time()
            if found and found[-1].kind in _ENDINGS and remaining > 0:
                # The end is told once its request is settled too (charge, deliverables),
                # so that whoever waited for the end finds the deliverables there.
                await self._until_settled(execution_id, found[-1].seq, deadline)
            if found or remaining <= 0:
                return found
            if (await self.store.get_execution(execution_id)).status.is_final:
                return await self.store.list_events(execution_id, after, limit)
            # Whoever runs it (this process, or an orchestrator service) says when there is
            # news; the execution's end is news too.
            await self.requests.control().changed(execution_id, after, min(remaining, 5.0))

    async def _until_settled(self, execution_id: str, seq: int, deadline: float) -> None:
        while anyio.current_time() < deadline:
            execution = await self.store.get_execution(execution_id)
            if not await self._unsettled(execution):
                return
            # The process that ran it tells when it is done reporting; a remote one is
            # asked again shortly.
            wait = min(deadline - anyio.current_time(), 0.2)
            await self.requests.control().changed(execution_id, seq, max(wait, 0.0))

    async def metrics(self, principal: Principal, execution_id: str) -> dict[str, Any]:
        """Durations, attempts, tokens, cost and bytes stored, per stage and in total."""
        execution = await self._own(principal, execution_id)
        stages = []
        for run in await self.stages(principal, execution_id):
            stages.append(
                {
                    "stage_id": run.stage_id,
                    "worker": run.worker,
                    "status": run.status.value,
                    "attempts": run.attempt,
                    "duration_ms": _ms(run),
                    "prompt_tokens": run.usage.prompt_tokens,
                    "completion_tokens": run.usage.completion_tokens,
                    "bytes_stored": run.usage.bytes_stored,
                    "cost_usd": str(run.cost.total_usd),
                    "method": run.summary.get("method"),
                }
            )
        total_ms = None
        if execution.started_at is not None and execution.finished_at is not None:
            total_ms = int((execution.finished_at - execution.started_at).total_seconds() * 1000)
        return {
            "execution_id": execution.id,
            "status": execution.status.value,
            "progress": execution.progress,
            "duration_ms": total_ms,
            "runs": execution.runs,
            "attempts": sum(s["attempts"] for s in stages),
            "prompt_tokens": execution.usage.prompt_tokens,
            "completion_tokens": execution.usage.completion_tokens,
            "bytes_stored": execution.usage.bytes_stored,
            "cost_usd": str(execution.cost.total_usd),
            "llm_cost_usd": str(execution.cost.llm_usd),
            "storage_cost_usd": str(execution.cost.storage_usd),
            "stages": stages,
        }

    async def cancel(self, principal: Principal, execution_id: str) -> Execution:
        """Stop an execution; it ends `cancelled` and its request too. Raises `ConflictError`
        if it has already finished."""
        await self._own(principal, execution_id)
        result = await self.requests.control().cancel(execution_id)
        await self.audit.record(principal.actor, "execution.cancel", f"execution:{execution_id}")
        return result

    async def resume(self, principal: Principal, execution_id: str) -> Execution:
        """Continue an interrupted execution from its last checkpoint (staff).

        An execution that finished but whose request was never settled (the process stopped,
        or settling failed, after its final commit) is settled now instead. One that a
        replica's recovery took up and finished while this was asked is returned as it
        ended. Raises `ConflictError` for one that had finished and was settled.
        """
        execution = await self.store.get_execution(execution_id)
        if execution.status.is_final and await self._unsettled(execution):
            await self.orchestrator.report(execution_id)
            await self.audit.record(
                principal.actor, "execution.report", f"execution:{execution_id}"
            )
            return await self.store.get_execution(execution_id)
        try:
            await self.requests.control().launch(execution_id)
        except ConflictError:
            if execution.status.is_final:
                raise
            if not (await self.store.get_execution(execution_id)).status.is_final:
                raise
            # Recovered and run to its end by a replica meanwhile: what was asked is done.
        await self.audit.record(principal.actor, "execution.resume", f"execution:{execution_id}")
        return await self.store.get_execution(execution_id)

    async def _unsettled(self, execution: Execution) -> bool:
        if execution.request_id is None:
            return False
        request = await self.store.get_request(execution.request_id)
        return request.status is RequestStatus.EXECUTING and request.execution_id == execution.id

    async def retry(self, principal: Principal, execution_id: str) -> Execution:
        """Run a failed or cancelled execution again, reusing its committed stages (staff).

        Raises `ConflictError` for other statuses, `QuotaExceededError` if the client can no
        longer afford it.
        """
        execution = await self._own(principal, execution_id)
        request = None
        if execution.request_id is not None and execution.client_id is not None:
            request = await self.store.get_request(execution.request_id)
        try:
            async with self.store.transaction() as tx:
                reopened = await self.orchestrator.reopen(execution_id, store=tx)
                if execution.client_id is not None:
                    # Held again: the estimate, less what its first run was charged.
                    estimate = Decimal(execution.template.estimated_cost_usd)
                    await self.requests.admit(tx, reopened, estimate)
                if request is not None:
                    await tx.update_request(
                        attrs.evolve(
                            request, status=RequestStatus.EXECUTING, updated_at=self.clock.now()
                        ),
                        expect_status=request.status.value,
                    )
                await self.audit.within(tx).record(
                    principal.actor,
                    "execution.retry",
                    f"execution:{execution_id}",
                    request_status=RequestStatus.EXECUTING.value,
                )
        except QuotaExceededError as exc:
            assert execution.client_id is not None
            await self.requests.refused(principal, execution.client_id, "execution.retry", exc)
            raise
        await self.requests.control().launch(execution_id)
        return reopened

    async def owners(self, principal: Principal) -> list[ExecutionOwner]:
        """Executions that want running and who runs them (staff), oldest first."""
        now = self.clock.now()
        return [
            ExecutionOwner(
                lease.execution_id,
                lease.status,
                _ownership(lease, now),
                lease.owner,
                lease.expires_at,
            )
            for lease in await self.store.list_leases()
        ]

    async def workers(self, principal: Principal) -> list[WorkerStatus]:
        """The worker endpoints as the orchestrator's registry sees them (staff): ready,
        busy, unhealthy or unreachable, with free slots. Asked of the orchestrator service
        when it runs apart. Raises `TransportError` if that service cannot be reached."""
        return await self.requests.control().workers()

    async def prune(self, principal: Principal, older_than_days: float = 30) -> dict[str, int]:
        """Forget checkpoints and events of executions finished more than `older_than_days`
        ago, and the stage data of those that completed (admins; see `Orchestrator.prune`).
        Raises `BadInputError` for a negative age."""
        if not 0 <= older_than_days <= 36_500:
            raise BadInputError(
                "older_than_days must be between 0 and 36500", details={"field": "older_than_days"}
            )
        counts = await self.orchestrator.prune(self.clock.now() - timedelta(days=older_than_days))
        await self.audit.record(principal.actor, "execution.prune", "executions", "ok", **counts)
        return counts


def _ownership(lease: Lease, now: datetime) -> str:
    if lease.owner is None:
        return "waiting"
    if lease.expires_at is None or lease.expires_at <= now or is_gone(lease.owner):
        return "interrupted"
    return "running"
