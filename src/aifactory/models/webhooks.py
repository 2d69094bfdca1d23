"""Webhook deliveries: what became of each attempt to post an event to a webhook."""

from __future__ import annotations

from datetime import datetime

import attrs

from ._display import TEXT, bounded_repr, iso_repr

__all__ = ["WebhookDelivery"]


@attrs.frozen
class WebhookDelivery:
    """One attempt to post event `event_id` (of type `event_type`) to a webhook.

    `attempt` counts from 1 for each event and webhook; retries of one event keep its
    `event_id`. `status_code` is the receiver's answer (`None` when none came: `error` says
    why: a refused address, a connection error, a timeout, a full queue); `delivered` is true
    for a 2xx answer. `url` is the webhook's address without its query (which may carry a
    token). `duration_s` is how long the attempt took.
    """

    id: str
    event_id: str
    event_type: str
    url: str
    attempt: int
    at: datetime = attrs.field(repr=iso_repr)
    duration_s: float
    status_code: int | None = None
    error: str | None = attrs.field(default=None, repr=bounded_repr(TEXT))
    delivered: bool = False
