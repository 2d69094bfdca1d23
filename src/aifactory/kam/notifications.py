"""`NotificationService`: a user's own notifications, as the API serves them (the
`Notifier`s in `notifier.py` are what sends them)."""

from __future__ import annotations

from .._clock import Clock
from .._exceptions import NotFoundError
from ..models import Notification, Principal
from ..state import Store

__all__ = ["NotificationService"]


class NotificationService:
    """Lists and marks read the caller's notifications; nobody sees another's."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def list(self, principal: Principal, unread_only: bool = False) -> list[Notification]:
        """The caller's own notifications, newest first."""
        return await self.store.list_notifications(principal.user.id, unread_only)

    async def mark_read(self, principal: Principal, notification_id: str) -> None:
        """Mark one of the caller's notifications read. Raises `NotFoundError`."""
        if not await self.store.mark_notification_read(
            notification_id, principal.user.id, self.clock.now()
        ):
            raise NotFoundError(f"no notification {notification_id!r}")
