"""`Records`: everything the factory keeps, as synchronous methods on one connection."""

from __future__ import annotations

from ._administration import AdministrationRecords
from ._executions import ExecutionRecords
from ._usage import UsageRecords
from ._webhooks import WebhookRecords

__all__ = ["Records"]


class Records(AdministrationRecords, ExecutionRecords, WebhookRecords, UsageRecords):
    """The account side's and the orchestrator's records (and the webhooks' and the usage
    ledger's) on one `Database` connection."""
