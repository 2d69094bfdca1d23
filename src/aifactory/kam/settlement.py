"""Settlement: the account side's answer to the orchestrator's budget and completion calls.

`Settlement` is the orchestrator's `QuotaGate` (holds on the client's budget while stages run)
and its `ExecutionSink` (when an execution ends: charge, deliverables, request status,
notifications). Both are idempotent: a repeated report changes nothing, a retried execution
is charged only what it cost on top.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from .._clock import Clock, IdFactory
from .._exceptions import ConflictError
from ..models import Deliverable, Execution, ExecutionStatus, RequestStatus
from ..orchestrator import ExecutionReport
from ..state import Store
from .audit import AuditLog
from .events import announce_settlement
from .notifier import Notifiers

__all__ = ["Settlement"]

_REQUEST_STATUS = {
    ExecutionStatus.COMPLETED: RequestStatus.COMPLETED,
    ExecutionStatus.FAILED: RequestStatus.FAILED,
    ExecutionStatus.CANCELLED: RequestStatus.CANCELLED,
}


class Settlement:
    """Budget holds while executions run, and settlement when they end."""

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        clock: Clock,
        ids: IdFactory,
        notifier: Notifiers,
    ) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self.ids = ids
        self.notifier = notifier

    # -- QuotaGate ------------------------------------------------------------------------

    async def reserve(self, execution: Execution, stage_id: str, amount: Decimal) -> Decimal | None:
        """Hold a stage's estimate; return the most the stage may spend. Raises
        `QuotaExceededError` if the budget cannot cover the estimate."""
        if execution.client_id is None:
            return None
        return await self.store.reserve(
            execution.client_id, execution.id, stage_id, amount, self.clock.now()
        )

    async def settle(self, execution: Execution, stage_id: str, cost: Decimal) -> None:
        """Replace a stage's hold by its actual cost (until the execution is charged)."""
        if execution.client_id is not None:
            await self.store.reserve(
                execution.client_id, execution.id, stage_id, cost, self.clock.now(), check=False
            )

    async def release(self, execution: Execution, stage_id: str) -> None:
        """Drop a stage's hold."""
        await self.store.release(execution.id, stage_id)

    # -- ExecutionSink ----------------------------------------------------------------------

    async def execution_finished(self, report: ExecutionReport) -> None:
        """Charge the cost, record deliverables, move the request on, notify. Idempotent."""
        execution = report.execution
        if execution.request_id is None or execution.client_id is None:
            await self.store.release(execution.id)
            return
        request = await self.store.get_request(execution.request_id)
        if request.status is not RequestStatus.EXECUTING or request.execution_id != execution.id:
            # Settled already (a repeated report: nothing is held any more) or superseded:
            # whatever it still holds goes, or it would stay held forever.
            await self.store.release(execution.id)
            return
        status = _REQUEST_STATUS[execution.status]
        now = self.clock.now()
        deliverables = [
            Deliverable(
                self.ids.new("dlv"),
                request.id,
                request.client_id,
                execution.id,
                artifact.type,
                artifact.name,
                artifact.media_type,
                artifact.ref,
                now,
                {"stage_id": artifact.stage_id} | artifact.metadata,
            )
            for artifact in report.artifacts
        ]
        try:
            async with self.store.transaction() as tx:
                # First: of two reports settling at once (a replica that resumed it and an
                # admin's resume, say), the second finds the request settled and stops here.
                await tx.update_request(
                    attrs.evolve(request, status=status, updated_at=now),
                    expect_status=RequestStatus.EXECUTING.value,
                )
                charged = await tx.charge(
                    request.client_id, execution.id, execution.cost.total_usd, now
                )
                await tx.release(execution.id)
                for deliverable in deliverables:
                    await tx.add_deliverable(deliverable)
                await self.audit.within(tx).record(
                    "system",
                    "request.settle",
                    f"request:{request.id}",
                    execution_id=execution.id,
                    status=status.value,
                    cost_usd=str(execution.cost.total_usd),
                    charged_usd=str(charged),
                    deliverables=[d.id for d in deliverables],
                )
        except ConflictError:
            if (await self.store.get_request(request.id)).status is not RequestStatus.EXECUTING:
                return  # settled meanwhile, by another report
            raise
        # Announced once committed (in-app, other notifiers, webhooks, budget thresholds);
        # a notifier that fails is logged and leaves the settlement as it is.
        await announce_settlement(
            self.notifier, request, execution, status, deliverables, charged, now
        )
