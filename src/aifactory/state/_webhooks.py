"""Webhook records: the log of delivery attempts, and which budget thresholds each client has
been told of this month (synchronous, see `_sql`)."""

from __future__ import annotations

from datetime import datetime

from ..models import WebhookDelivery
from ._sql import Database
from ._tables import Table

__all__ = ["WEBHOOK_DELIVERIES", "WebhookRecords"]

WEBHOOK_DELIVERIES = Table("webhook_deliveries", WebhookDelivery, ("id",))


class WebhookRecords(Database):
    """Webhook delivery attempts and budget-threshold announcements."""

    def add_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        """Record one attempt to deliver a webhook event."""
        self._insert(WEBHOOK_DELIVERIES, delivery)

    def list_webhook_deliveries(
        self, event_id: str | None = None, limit: int = 100
    ) -> list[WebhookDelivery]:
        """Delivery attempts (of one event, or all), newest first, at most `limit`."""
        order = " ORDER BY at DESC, attempt DESC, id DESC LIMIT ?"
        if event_id is None:
            return self._many(WEBHOOK_DELIVERIES, "TRUE" + order, (limit,))
        return self._many(WEBHOOK_DELIVERIES, "event_id = ?" + order, (event_id, limit))

    def claim_budget_threshold(
        self, client_id: str, month: str, percent: int, at: datetime
    ) -> bool:
        """Note that `client_id` reached `percent` % of its budget in `month` (`YYYY-MM`):
        true the first time, false ever after (in any process), so it is announced once."""
        cursor = self._execute(
            "INSERT INTO budget_thresholds(client_id, month, percent, at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (client_id, month, percent, at.isoformat()),
        )
        return cursor.rowcount == 1
