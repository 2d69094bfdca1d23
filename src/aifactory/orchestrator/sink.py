"""How the orchestrator reports back without knowing about accounts.

The account side implements `ExecutionSink`; embedded it is a method call, remote it is
`POST /api/worker-sessions/{id}/complete`.
"""

from __future__ import annotations

from typing import Any, Protocol

import anyio
import attrs

from ..models.execution import Execution, WorkerStatus
from ..models.storage_ref import StorageRef

__all__ = ["Artifact", "ExecutionControl", "ExecutionReport", "ExecutionSink", "LocalControl"]


@attrs.frozen
class Artifact:
    """A product of a stage meant for the client (a report), stored by reference."""

    stage_id: str
    type: str
    name: str
    media_type: str
    ref: StorageRef
    metadata: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ExecutionReport:
    """The end of an execution: its final record and the artifacts of its deliverable stages."""

    execution: Execution
    artifacts: tuple[Artifact, ...] = ()


class ExecutionSink(Protocol):
    """Receives finished executions (completed, failed or cancelled)."""

    async def execution_finished(self, report: ExecutionReport) -> None:
        """Settle costs, store deliverables, update the request, notify. Must be idempotent."""
        ...


class ExecutionControl(Protocol):
    """How the account side starts and stops executions: in process, or over HTTP when the
    orchestrator is a service of its own."""

    async def launch(self, execution_id: str) -> None:
        """Run (or resume) a recorded execution in the background."""
        ...

    async def cancel(self, execution_id: str) -> Execution:
        """Stop an execution; return its final record."""
        ...

    async def changed(self, execution_id: str, after: int, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) until the execution may have events after sequence
        number `after`; return at once if it has them already."""
        ...

    async def workers(self) -> list[WorkerStatus]:
        """The worker endpoints as the orchestrator's registry sees them."""
        ...


class LocalControl:
    """Controls an orchestrator in this process."""

    def __init__(self, orchestrator: Any) -> None:
        self.orchestrator = orchestrator

    async def launch(self, execution_id: str) -> None:
        """Start it in the orchestrator's task group."""
        await self.orchestrator.launch(execution_id)

    async def cancel(self, execution_id: str) -> Execution:
        """Cancel it and wait until it has stopped."""
        result: Execution = await self.orchestrator.cancel(execution_id)
        return result

    async def changed(self, execution_id: str, after: int, timeout_s: float) -> None:
        """Wait for the orchestrator to record news of the execution, if it runs it here;
        else (run by another process sharing the state) look again after a short while."""
        if await self.orchestrator.store.last_event_seq(execution_id) > after:
            return
        if self.orchestrator.is_running(execution_id):
            await self.orchestrator.changed(execution_id, timeout_s)
        else:
            await anyio.sleep(min(timeout_s, 0.2))

    async def workers(self) -> list[WorkerStatus]:
        """The orchestrator's registry's view of its worker endpoints."""
        found: list[WorkerStatus] = await self.orchestrator.registry.status()
        return found
