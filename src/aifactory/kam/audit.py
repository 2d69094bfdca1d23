"""The audit log writer: who did what, when, with secrets stripped before anything is stored."""

from __future__ import annotations

import re
from typing import Any

from .._clock import Clock
from ..models import AuditEvent, Principal
from ..state import Store

__all__ = ["AuditLog", "is_secret_name", "redact"]

_SECRET_WORDS = frozenset(
    {
        "pass",
        "passwd",
        "password",
        "passphrase",
        "token",
        "secret",
        "key",
        "authorization",
        "cookie",
        "hash",
        "credential",
        "credentials",
        "signature",
    }
)
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
REDACTED = "[redacted]"


def is_secret_name(name: str) -> bool:
    """Whether a field name has a secret's word in it (`password`, `api_key`, `sessionToken`,
    `password_hash`), judged by whole words, so `keywords` or `tokens_used` are kept."""
    return any(word.lower() in _SECRET_WORDS for word in _WORD.findall(str(name)))


def redact(value: Any) -> Any:
    """`value` with every field whose name suggests a secret replaced by `[redacted]`."""
    if isinstance(value, dict):
        return {k: REDACTED if is_secret_name(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class AuditLog:
    """Appends events to the store's append-only audit table."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def list(
        self, principal: Principal, action: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """The audit log, newest first, optionally of one `action`; at most `limit` (1-1000)
        events."""
        return await self._store.list_audit(action=action, limit=max(1, min(limit, 1000)))

    def within(self, store: Store) -> AuditLog:
        """This log, writing into `store` (a transaction, so that the event commits with the
        change it records)."""
        return AuditLog(store, self._clock)

    async def record(
        self, actor: str, action: str, target: str, outcome: str = "ok", **details: Any
    ) -> AuditEvent:
        """Append one event; `details` are redacted first."""
        return await self._store.append_audit(
            self._clock.now(), actor, action, target, outcome, redact(details)
        )
