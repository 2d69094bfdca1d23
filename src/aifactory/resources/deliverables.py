"""What executions delivered, the caller's notifications, the audit log and the webhooks'
delivery log (`session.deliverables`, `session.notifications`, `session.audit`,
`session.webhooks`)."""

from __future__ import annotations

import builtins

from ..models import AuditEvent, Deliverable, Notification, WebhookDelivery
from ._base import AsyncResource

__all__ = ["AsyncAudit", "AsyncDeliverables", "AsyncNotifications", "AsyncWebhooks"]


class AsyncDeliverables(AsyncResource):
    """What executions delivered."""

    async def list(self, request_id: str) -> builtins.list[Deliverable]:
        """Deliverables of a request."""
        return await self._call("deliverables.list", request_id=request_id)

    async def get(self, deliverable_id: str) -> Deliverable:
        """One deliverable's record."""
        return await self._call("deliverables.get", deliverable_id=deliverable_id)

    async def download(self, deliverable_id: str) -> bytes:
        """Its bytes, verified against the stored sha256."""
        return await self._call("deliverables.download", deliverable_id=deliverable_id)


class AsyncNotifications(AsyncResource):
    """Your notifications."""

    async def list(self, unread_only: bool = False) -> builtins.list[Notification]:
        """Newest first."""
        return await self._call("notifications.list", unread_only=unread_only)

    async def mark_read(self, notification_id: str) -> None:
        """Mark one read."""
        await self._call("notifications.mark_read", notification_id=notification_id)


class AsyncAudit(AsyncResource):
    """The audit log (admins)."""

    async def list(self, action: str | None = None, limit: int = 100) -> builtins.list[AuditEvent]:
        """Newest first, optionally of one action."""
        return await self._call("audit.list", action=action, limit=limit)


class AsyncWebhooks(AsyncResource):
    """The webhooks' delivery log (staff)."""

    async def deliveries(
        self, event_id: str | None = None, limit: int = 100
    ) -> builtins.list[WebhookDelivery]:
        """Delivery attempts (of one event, or all), newest first; at most `limit` (1-1000)."""
        return await self._call("webhooks.deliveries", event_id=event_id, limit=limit)
