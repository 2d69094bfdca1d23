"""Telling people their work is done. Pluggable: in-app by default, anything else by protocol."""

from __future__ import annotations

from typing import Any, Protocol

from .._clock import Clock, IdFactory
from ..models import Notification, User
from ..state import Store

__all__ = ["InAppNotifier", "Notifier"]


class Notifier(Protocol):
    """Delivers a message to a user (in-app, e-mail, webhook, ...)."""

    async def notify(self, user: User, kind: str, message: str, data: dict[str, Any]) -> None:
        """Deliver the message; raising does not undo the work it reports."""
        ...


class InAppNotifier:
    """Stores notifications for users to list in the app."""

    def __init__(self, store: Store, clock: Clock, ids: IdFactory) -> None:
        self._store = store
        self._clock = clock
        self._ids = ids

    async def notify(self, user: User, kind: str, message: str, data: dict[str, Any]) -> None:
        """Store a notification for `user`."""
        await self._store.add_notification(
            Notification(self._ids.new("ntf"), user.id, kind, message, self._clock.now(), data)
        )
