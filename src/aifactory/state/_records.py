"""`Records`: everything the factory keeps, as synchronous methods on one connection."""

from __future__ import annotations

from ._accounts import AccountRecords
from ._executions import ExecutionRecords

__all__ = ["Records"]


class Records(AccountRecords, ExecutionRecords):
    """The account side's and the orchestrator's records on one `Database` connection."""
