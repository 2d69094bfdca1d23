"""How the orchestrator reports back without knowing about accounts.

The account side implements `ExecutionSink`; embedded it is a method call, remote it is
`POST /api/worker-sessions/{id}/complete`.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from ..models.execution import Execution
from ..models.storage_ref import StorageRef

__all__ = ["Artifact", "ExecutionReport", "ExecutionSink"]


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
