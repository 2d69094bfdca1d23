"""Webhooks: account events posted as signed JSON to an address the operator chose.

A `Webhook` (in `FactoryConfig.webhooks`) names the URL, the shared secret and the event
types to post (`aifactory.kam.events`); the factory runs a `WebhookNotifier` for each, from
when it opens until it closes. The body, the headers and their signature are described in
`aifactory.kam.webhook_signing`; a receiver checks them with `verify_webhook`.

Deliveries go out in the background, so a settlement never waits for a receiver; an answer
of 5xx or 429, or none (a connection error, a timeout), is retried with backoff (the
webhook's `RetryPolicy`, under the one retry mechanism of the package), any other answer is
final, and every attempt is recorded in the state (`Store.list_webhook_deliveries`; staff
read it through the operation `webhooks.deliveries`). The URL passes the factory's
`FetchPolicy` when the factory opens and again, resolved and pinned, at every delivery
(`SafeFetcher.post`): loopback and private addresses are refused unless it allows them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._clock import Clock, IdFactory
from .._exceptions import AIFactoryError, BadInputError, TransportError
from .._retry import RetryPolicy
from .._version import __version__
from ..models import Principal, WebhookDelivery
from ..state import Store
from ..workers import FetchPolicy, SafeFetcher
from .events import EVENT_TYPES
from .notifier import AccountEvent
from .webhook_signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSignatureError,
    sign_webhook,
    verify_webhook,
    webhook_body,
)

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Webhook",
    "WebhookNotifier",
    "WebhookService",
    "WebhookSignatureError",
    "check_webhooks",
    "verify_webhook",
]

logger = logging.getLogger("aifactory.kam")
_USER_AGENT = f"aifactory/{__version__} (+webhooks)"
#: The shortest secret a webhook takes: `secrets.token_urlsafe(32)` gives 43 characters.
MIN_SECRET_LENGTH = 16
# Any policy refuses what this one does: a URL it refuses can never be delivered to.
_LENIENT = SafeFetcher(FetchPolicy(allow_loopback=True, allow_private=True))


def _checked_url(instance: object, attribute: object, url: str) -> None:
    if not isinstance(url, str):
        raise BadInputError("a webhook URL is a string", details={"field": "url"})
    parts = _LENIENT.check_url(url)  # scheme, credentials, host, numeric hosts
    if parts.fragment:
        raise BadInputError("a webhook URL has no #fragment", details={"field": "url"})


def _checked_secret(instance: object, attribute: object, secret: str) -> None:
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
        raise BadInputError(
            f"a webhook secret is a string of at least {MIN_SECRET_LENGTH} characters "
            "(make one with secrets.token_urlsafe(32))",
            details={"field": "secret"},
        )


def _event_types(value: Any) -> frozenset[str]:
    types = frozenset([value] if isinstance(value, str) else value)
    unknown = sorted(types - set(EVENT_TYPES))
    if unknown or not types:
        raise BadInputError(
            f"webhook events must be some of {', '.join(EVENT_TYPES)}, not {unknown or 'none'}",
            details={"field": "events", "unknown": unknown},
        )
    return types


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise BadInputError(f"{attribute.name} must be positive, not {value}")


@attrs.frozen
class Webhook:
    """Where to post account events: an `http(s)` URL, and the `secret` they are signed with.

    The secret is yours to make and to share with the receiver (`secrets.token_urlsafe(32)`);
    there is no default, and it never appears in a repr, a log or the delivery log.
    `events` are the types to post (default: all of `aifactory.kam.events.EVENT_TYPES`).
    `retry` says how often and how patiently a delivery is retried after a 5xx or 429 answer
    or none (default: 5 attempts, waits from 1 s doubling up to 60 s); `timeout_s` bounds
    each attempt. At most `max_pending` events wait for delivery (more are dropped, and
    recorded as dropped), `concurrency` at a time; closing the factory waits up to
    `close_timeout_s` for them.

    Raises `BadInputError` for a URL that is not `http(s)`, has no host, carries credentials
    or a fragment, or names an address no policy allows (link-local, multicast, ...); for a
    secret shorter than 16 characters; for unknown event types; and for limits that are not
    positive. (The factory's `FetchPolicy` is applied when the factory opens.)
    """

    url: str = attrs.field(validator=_checked_url)
    secret: str = attrs.field(repr=False, validator=_checked_secret)
    events: frozenset[str] = attrs.field(default=frozenset(EVENT_TYPES), converter=_event_types)
    retry: RetryPolicy = attrs.field(
        factory=lambda: RetryPolicy(
            initial_interval_s=1.0, maximum_interval_s=60.0, maximum_attempts=5
        )
    )
    timeout_s: float = attrs.field(default=10.0, validator=_positive)
    max_pending: int = attrs.field(default=1000, validator=_positive)
    concurrency: int = attrs.field(default=4, validator=_positive)
    close_timeout_s: float = attrs.field(default=5.0, validator=_positive)

    @property
    def display_url(self) -> str:
        """The URL without its query (which may carry a token): what logs and the delivery
        log show."""
        return self.url.split("#", 1)[0].split("?", 1)[0]


class _Failed(Exception):
    """An attempt that did not deliver (never leaves this module)."""

    def __init__(self, record: WebhookDelivery) -> None:
        super().__init__(record.error or f"HTTP {record.status_code}")
        self.record = record


class _Retryable(_Failed):
    """5xx, 429, or no answer: worth another attempt."""


class WebhookNotifier:
    """Posts the events of the webhook's types to it, in the background: an `EventNotifier`,
    and an async context manager that the factory enters when it opens (the deliveries run
    in a task group of their own) and leaves when it closes.

    `policy` is the factory's `FetchPolicy` (default: public addresses only), with the
    webhook's `timeout_s`; `sleep` is what retry backoff waits with. Raises `BadInputError`
    (`UnsafeURLError`) if the policy refuses the URL's address outright.
    """

    def __init__(
        self,
        webhook: Webhook,
        store: Store,
        clock: Clock,
        ids: IdFactory,
        policy: FetchPolicy | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.webhook = webhook
        self.fetcher = SafeFetcher(
            attrs.evolve(policy or FetchPolicy(), timeout_s=webhook.timeout_s)
        )
        self.fetcher.check_url(webhook.url)
        self._store, self._clock, self._ids, self._sleep = store, clock, ids, sleep
        # Only what `_attempt` marks worth it is retried; its attempts count as the policy's.
        self._retry = attrs.evolve(webhook.retry, non_retryable=(), only=(_Retryable,))
        self._send: MemoryObjectSendStream[AccountEvent] | None = None
        self._tg: TaskGroup | None = None

    def __repr__(self) -> str:
        return f"<WebhookNotifier {self.webhook.display_url}>"

    async def __aenter__(self) -> Self:
        send, receive = anyio.create_memory_object_stream[AccountEvent](self.webhook.max_pending)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        with receive:
            for _ in range(self.webhook.concurrency):
                self._tg.start_soon(self._deliver_all, receive.clone())
        self._send = send
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop taking events, and give those queued or in flight `close_timeout_s` to go."""
        tg, send = self._tg, self._send
        self._tg = self._send = None
        if tg is None or send is None:
            return
        send.close()
        tg.cancel_scope.deadline = anyio.current_time() + self.webhook.close_timeout_s
        await tg.__aexit__(exc_type, exc, tb)
        if tg.cancel_scope.cancelled_caught:
            logger.warning(
                "webhook %s: closed with deliveries unfinished after %g s",
                self.webhook.display_url,
                self.webhook.close_timeout_s,
            )

    async def publish(self, event: AccountEvent) -> None:
        """Queue `event` for delivery if the webhook takes its type; never waits for the
        receiver. An event that finds the queue full (or the notifier closed) is dropped,
        recorded and logged."""
        if event.type not in self.webhook.events:
            return
        try:
            if self._send is None:
                raise anyio.ClosedResourceError
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            await self._dropped(event, f"dropped: {self.webhook.max_pending} events wait already")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._dropped(event, "dropped: the webhook notifier is not running")

    async def deliver(self, event: AccountEvent) -> WebhookDelivery:
        """Post `event` now, retried as the webhook's policy says; the record of the last
        attempt (each is recorded in the state). A delivery that fails for good is logged,
        never raised."""
        body = webhook_body(event)
        attempts: list[WebhookDelivery] = []

        async def attempt() -> None:
            record, retryable = await self._attempt(event, body, len(attempts) + 1)
            attempts.append(record)
            if not record.delivered:
                raise (_Retryable if retryable else _Failed)(record)

        try:
            await self._retry.call(attempt, sleep=self._sleep)
        except _Failed as failed:
            logger.warning(
                "webhook %s: %s event %s not delivered after %d attempt(s): %s",
                self.webhook.display_url,
                event.type,
                event.id,
                len(attempts),
                failed,
            )
        return attempts[-1]

    async def _deliver_all(self, events: MemoryObjectReceiveStream[AccountEvent]) -> None:
        async with events:
            async for event in events:
                try:
                    await self.deliver(event)
                except Exception:  # a bug here must not end the other deliveries
                    logger.exception("webhook %s: delivery failed", self.webhook.display_url)

    async def _attempt(
        self, event: AccountEvent, body: bytes, number: int
    ) -> tuple[WebhookDelivery, bool]:
        """One POST, recorded: its record, and whether another attempt is worth it."""
        at = self._clock.now()
        started = anyio.current_time()
        status: int | None = None
        error: str | None = None
        headers = sign_webhook(self.webhook.secret, event, body, int(at.timestamp()))
        try:
            result = await self.fetcher.post(
                self.webhook.url, body, {**headers, "User-Agent": _USER_AGENT}
            )
        except BadInputError as exc:  # an address the policy refuses: final
            error, retryable = self._described(exc), False
        except TransportError as exc:  # no answer: try again
            error, retryable = self._described(exc), True
        else:
            status = result.status
            retryable = status == 429 or status >= 500
        record = WebhookDelivery(
            self._ids.new("whd"),
            event.id,
            event.type,
            self.webhook.display_url,
            number,
            at,
            round(anyio.current_time() - started, 6),
            status,
            error,
            delivered=status is not None and 200 <= status < 300,
        )
        await self._record(record)
        return record, retryable

    def _described(self, error: AIFactoryError) -> str:
        # The address as the delivery log shows it: without a query that may hold a token.
        text = f"{error.code}: {error.message}".replace(self.webhook.url, self.webhook.display_url)
        query = self.webhook.url[len(self.webhook.display_url) :]
        return (text.replace(query, "") if query else text)[:500]

    async def _dropped(self, event: AccountEvent, reason: str) -> None:
        logger.warning(
            "webhook %s: %s event %s %s", self.webhook.display_url, event.type, event.id, reason
        )
        await self._record(
            WebhookDelivery(
                self._ids.new("whd"),
                event.id,
                event.type,
                self.webhook.display_url,
                0,
                self._clock.now(),
                0.0,
                error=reason,
            )
        )

    async def _record(self, record: WebhookDelivery) -> None:
        try:
            await self._store.add_webhook_delivery(record)
        except AIFactoryError as exc:
            logger.warning(
                "webhook %s: delivery of event %s not recorded: %s (%s)",
                self.webhook.display_url,
                record.event_id,
                type(exc).__name__,
                exc.code,
            )


def check_webhooks(webhooks: Sequence[Webhook], policy: FetchPolicy | None) -> None:
    """Refuse, before anything opens, webhooks whose address `policy` refuses outright.

    Raises `BadInputError` (`UnsafeURLError`).
    """
    fetcher = SafeFetcher(policy)
    for webhook in webhooks:
        fetcher.check_url(webhook.url)


class WebhookService:
    """The factory's webhooks: their notifiers, run while the factory is open (an async
    context manager), and their delivery log, which staff read."""

    def __init__(self, store: Store, notifiers: Sequence[WebhookNotifier]) -> None:
        self.store = store
        self.notifiers = tuple(notifiers)
        self._running = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            for notifier in self.notifiers:
                await stack.enter_async_context(notifier)
            self._running = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leave every notifier: each waits up to its `close_timeout_s` for its deliveries."""
        await self._running.__aexit__(exc_type, exc, tb)

    async def deliveries(
        self, principal: Principal, event_id: str | None = None, limit: int = 100
    ) -> list[WebhookDelivery]:
        """Webhook delivery attempts (of one event, or all), newest first; at most `limit`
        (1-1000)."""
        return await self.store.list_webhook_deliveries(event_id, max(1, min(limit, 1000)))
