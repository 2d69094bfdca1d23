"""The webhook wire format: the body, the signed headers, and their verification (no I/O).

Every event is one POST whose body is

```json
{"created_at": "2026-01-01T00:00:00+00:00", "data": {...}, "id": "evt_...", "type": "request.completed"}
```

(compact JSON, keys sorted, UTF-8) with the headers

| header | value |
|---|---|
| `Content-Type` | `application/json` |
| `X-AIFactory-Event-Id` | the event's `id`, the same on every retry (deduplicate on it) |
| `X-AIFactory-Event-Type` | the event's `type` |
| `X-AIFactory-Timestamp` | when this attempt was signed, in Unix seconds |
| `X-AIFactory-Signature` | `v1=` and the hex HMAC-SHA256, keyed with the secret, of `f"{timestamp}.{body}"` |

A receiver checks them with `verify_webhook`, which raises `WebhookSignatureError` (an
`AuthenticationError`, 401) for a request the factory did not sign.
"""  # noqa: E501

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._exceptions import AuthenticationError
from ..protocol.codec import dumps

if TYPE_CHECKING:  # a receiver's `verify_webhook` loads no more of the factory than this
    from .notifier import AccountEvent

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookSignatureError",
    "sign_webhook",
    "verify_webhook",
    "webhook_body",
]

EVENT_ID_HEADER = "X-AIFactory-Event-Id"
EVENT_TYPE_HEADER = "X-AIFactory-Event-Type"
TIMESTAMP_HEADER = "X-AIFactory-Timestamp"
SIGNATURE_HEADER = "X-AIFactory-Signature"


class WebhookSignatureError(AuthenticationError):
    """A webhook request whose signature is missing or wrong, whose timestamp is outside the
    tolerance, or whose body is not the event its headers name."""

    code = "webhook_signature_invalid"


def webhook_body(event: AccountEvent) -> bytes:
    """The JSON body posted for `event`: `id`, `type`, `created_at` (ISO 8601) and `data`."""
    return dumps(
        {
            "id": event.id,
            "type": event.type,
            "created_at": event.created_at.isoformat(),
            "data": event.data,
        }
    )


def _signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_webhook(secret: str, event: AccountEvent, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers of one delivery of `event` (`body`), signed at `timestamp` (Unix seconds)."""
    return {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: event.id,
        EVENT_TYPE_HEADER: event.type,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"v1={_signature(secret, timestamp, body)}",
    }


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a webhook request as its receiver: the event it carries, if `body` is what the
    factory signed with `secret`, at most `tolerance_s` seconds from `now` (default: this
    machine's clock, in Unix seconds), for the event its headers name.

    `headers` may be any mapping (names in any case: a Starlette `request.headers`, a
    `dict`); pass the body exactly as received, before any JSON parsing. The signature is
    compared in constant time; the signature header may list several (`v1=...,v1=...`).

    Raises `WebhookSignatureError` (an `AuthenticationError`) when a header is missing or
    malformed, the timestamp is too old or too new, no signature matches, or the body is not
    a JSON event whose `id` is the `X-AIFactory-Event-Id` header.
    """
    found = {name.lower(): value for name, value in headers.items()}
    raw = body.encode() if isinstance(body, str) else bytes(body)
    stamp = found.get(TIMESTAMP_HEADER.lower(), "")
    if not stamp.isdigit():
        raise WebhookSignatureError(f"missing or malformed {TIMESTAMP_HEADER} header")
    skew = abs((time.time() if now is None else now) - int(stamp))
    if skew > tolerance_s:
        raise WebhookSignatureError(
            f"the webhook was signed {skew:.0f} s from now, beyond the {tolerance_s:g} s allowed",
            details={"skew_s": round(skew)},
        )
    expected = _signature(secret, int(stamp), raw)
    offered = [
        part.strip()[3:]
        for part in found.get(SIGNATURE_HEADER.lower(), "").split(",")
        if part.strip().startswith("v1=")
    ]
    # Every candidate is compared, each in constant time.
    matches = [hmac.compare_digest(expected.encode(), c.encode()) for c in offered]
    if not any(matches):
        raise WebhookSignatureError("the webhook signature does not match")
    try:
        event = json.loads(raw)
    except ValueError as exc:
        raise WebhookSignatureError("the webhook body is not JSON") from exc
    if not isinstance(event, dict) or event.get("id") != found.get(EVENT_ID_HEADER.lower()):
        raise WebhookSignatureError(f"the body is not the event {EVENT_ID_HEADER} names")
    return event
