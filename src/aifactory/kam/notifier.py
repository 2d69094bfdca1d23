"""Telling people what happened: in-app always, and any number of other notifiers alongside.

The account side announces each `AccountEvent` (a request settled, a budget threshold
reached) once, to `Notifiers`, which passes it on:

- to every `Notifier` (the in-app one first, always there; e-mail, chat, ...), once per
  active user of the event's client: `notify(user, kind, message, data)`;
- to every `EventNotifier` (a webhook), once: `publish(event)`, whoever it concerns.

A notifier that raises is logged (logger `aifactory.kam`, its error's type, never its text,
which may carry an address or a token) and skipped: the others still hear of the event, and
the work it reports stands. A notifier should return quickly (the settlement waits for it);
one that talks to a slow service queues its work, as `WebhookNotifier` does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

from .._clock import Clock, IdFactory
from .._exceptions import AIFactoryError
from ..models import Notification, User
from ..state import Store

__all__ = ["AccountEvent", "EventNotifier", "InAppNotifier", "Notifier", "Notifiers"]

logger = logging.getLogger("aifactory.kam")


@attrs.frozen
class AccountEvent:
    """Something the account side tells people about, once, whoever hears of it.

    `type` is dotted (`request.completed`, `budget.threshold`, ...); `message` the sentence
    people read in the app; `data` the facts, plain JSON values (what a webhook's body
    carries). The `id` stays the same wherever and however often the event is delivered.
    """

    id: str
    type: str
    created_at: datetime
    client_id: str
    message: str
    data: dict[str, Any] = attrs.field(factory=dict)


class Notifier(Protocol):
    """Delivers a message to a user (in-app, e-mail, chat, ...)."""

    async def notify(self, user: User, kind: str, message: str, data: dict[str, Any]) -> None:
        """Deliver the message; raising does not undo the work it reports."""
        ...


@runtime_checkable
class EventNotifier(Protocol):
    """Takes each account event once, whoever it concerns (a webhook). A notifier that has
    `publish` is given events through it, never through `notify`."""

    async def publish(self, event: AccountEvent) -> None:
        """Deliver (or queue) the event; raising does not undo the work it reports."""
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


class Notifiers:
    """The fan-out: the in-app notifier, then each of `extra` in order (see the module
    docstring). One failing never stops the others, and `publish` never raises for it."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        ids: IdFactory,
        extra: Sequence[Notifier | EventNotifier] = (),
    ) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids
        self.in_app = InAppNotifier(store, clock, ids)
        self.extra = tuple(extra)

    @property
    def all(self) -> tuple[Notifier | EventNotifier, ...]:
        """Every notifier, the in-app one first."""
        return (self.in_app, *self.extra)

    async def publish(self, event: AccountEvent) -> None:
        """Tell every event notifier about `event`, and every active user of its client
        through each of the others."""
        try:
            users = [u for u in await self.store.list_users(event.client_id) if u.active]
        except AIFactoryError as exc:
            _failed(self.store, event, exc)
            users = []
        for notifier in self.all:
            if isinstance(notifier, EventNotifier):
                try:
                    await notifier.publish(event)
                except Exception as exc:
                    _failed(notifier, event, exc)
                continue
            for user in users:
                try:
                    await notifier.notify(user, event.type, event.message, event.data)
                except Exception as exc:
                    _failed(notifier, event, exc)


def _failed(notifier: object, event: AccountEvent, error: Exception) -> None:
    # The type, and our own errors' code, but no message: a notifier's error may quote an
    # address or a token.
    code = f" ({error.code})" if isinstance(error, AIFactoryError) else ""
    logger.warning(
        "notifier %s failed on %s event %s: %s%s",
        type(notifier).__name__,
        event.type,
        event.id,
        type(error).__name__,
        code,
    )
