"""`Records`: everything the factory keeps, as synchronous methods on one connection."""

from __future__ import annotations

from ._administration import AdministrationRecords
from ._executions import ExecutionRecords
from ._templates import TemplateRecords
from ._usage import UsageRecords
from ._webhooks import WebhookRecords

__all__ = ["Records"]


class Records(
    AdministrationRecords, ExecutionRecords, WebhookRecords, UsageRecords, TemplateRecords
):
    """The account side's and the orchestrator's records (and the webhooks', the usage
    ledger's and the templates') on one `Database` connection."""
