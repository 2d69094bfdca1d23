"""The webhook wire format: what the factory signs, `verify_webhook` accepts; a tampered
body, a wrong secret, a stale or future timestamp and a swapped event id it refuses."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime

import pytest

from aifactory import AccountEvent, AuthenticationError, WebhookSignatureError, verify_webhook
from aifactory.kam.webhook_signing import sign_webhook, webhook_body

SECRET = secrets.token_urlsafe(32)
AT = 1_767_225_600  # 2026-01-01T00:00:00Z
EVENT = AccountEvent(
    "evt_1",
    "request.completed",
    datetime(2026, 1, 1, tzinfo=UTC),
    "cli_1",
    "Your request “Ünïcode” is complete.",
    {"request_id": "req_1", "title": "Ünïcode", "deliverables": ["dlv_1"]},
)


def _signed(secret: str = SECRET, at: int = AT) -> tuple[dict[str, str], bytes]:
    body = webhook_body(EVENT)
    return sign_webhook(secret, EVENT, body, at), body


def test_the_body_and_signature_follow_the_documented_recipe() -> None:
    headers, body = _signed()
    assert json.loads(body) == {
        "id": "evt_1",
        "type": "request.completed",
        "created_at": "2026-01-01T00:00:00+00:00",
        "data": EVENT.data,
    }
    assert headers["X-AIFactory-Event-Id"] == "evt_1"
    assert headers["X-AIFactory-Event-Type"] == "request.completed"
    assert headers["X-AIFactory-Timestamp"] == str(AT)
    # A receiver in any language: HMAC-SHA256 over "{timestamp}.{body}", hex.
    expected = hmac.new(SECRET.encode(), f"{AT}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-AIFactory-Signature"] == f"v1={expected}"
    assert SECRET not in json.dumps(headers)


def test_a_genuine_delivery_is_accepted_with_headers_in_any_case() -> None:
    headers, body = _signed()
    lower = {name.lower(): value for name, value in headers.items()}
    assert verify_webhook(SECRET, lower, body, now=AT + 299)["id"] == "evt_1"
    assert verify_webhook(SECRET, headers, body.decode(), now=AT - 299)["data"] == EVENT.data
    # Several signatures (a sender mid-rotation): one matching is enough.
    several = headers | {"X-AIFactory-Signature": "v1=00," + headers["X-AIFactory-Signature"]}
    assert verify_webhook(SECRET, several, body, now=AT)["type"] == "request.completed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("tampered body", "does not match"),
        ("wrong secret", "does not match"),
        ("stale", "beyond the 300 s allowed"),
        ("future", "beyond the 300 s allowed"),
        ("no timestamp", "X-AIFactory-Timestamp"),
        ("no signature", "does not match"),
        ("non-ascii signature", "does not match"),
        ("other event id", "X-AIFactory-Event-Id"),
    ],
)
def test_what_the_factory_did_not_sign_is_refused(change: str, message: str) -> None:
    headers, body = _signed(
        secret="another-secret-of-enough-length" if change == "wrong secret" else SECRET
    )
    now = {"stale": AT + 301, "future": AT - 301}.get(change, AT)
    if change == "tampered body":
        body = body.replace(b"req_1", b"req_2")
    elif change == "no timestamp":
        del headers["X-AIFactory-Timestamp"]
    elif change == "no signature":
        del headers["X-AIFactory-Signature"]
    elif change == "non-ascii signature":
        headers["X-AIFactory-Signature"] = "v1=é"
    elif change == "other event id":
        headers["X-AIFactory-Event-Id"] = "evt_2"
    with pytest.raises(WebhookSignatureError, match=message) as refused:
        verify_webhook(SECRET, headers, body, now=now)
    assert isinstance(refused.value, AuthenticationError)
    assert SECRET not in str(refused.value)


def test_the_tolerance_is_the_receivers_choice() -> None:
    headers, body = _signed()
    with pytest.raises(WebhookSignatureError):
        verify_webhook(SECRET, headers, body, tolerance_s=10, now=AT + 11)
    assert verify_webhook(SECRET, headers, body, tolerance_s=3600, now=AT + 3000)["id"] == "evt_1"
