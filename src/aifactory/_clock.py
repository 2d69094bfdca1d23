"""Injected time and identity: a `Clock` and an `IdFactory`.

Nothing in aifactory calls `datetime.now()` or `secrets` for ids directly; it asks the clock and
id factory it was given, so expiry, backoff and resume are testable without sleeping.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "IdFactory", "ManualClock", "RandomIds", "SequentialIds", "SystemClock"]


class Clock(Protocol):
    """Tells the time (always timezone-aware UTC)."""

    def now(self) -> datetime:
        """The current instant."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current instant, UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        """The instant the clock was last set to."""
        return self._now

    def advance(self, delta: timedelta | float) -> None:
        """Move forward by `delta` (a timedelta or seconds)."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        self._now += delta


class IdFactory(Protocol):
    """Makes new identifiers with a readable prefix (`req_...`, `exec_...`)."""

    def new(self, prefix: str) -> str:
        """A fresh id that starts with `prefix_`."""
        ...


_BASE32 = "0123456789abcdefghijklmnopqrstuv"  # RFC 4648 "extended hex", lower case
_BASE32_PAIRS = [a + b for a in _BASE32 for b in _BASE32]
_SHIFTS = tuple(range(120, -1, -10))


class RandomIds:
    """Ids ordered by creation time, with 80 random bits: unguessable and collision-free in
    practice. `exec_` + 26 characters encoding 48 bits of Unix milliseconds, then the random
    bits, in base 32 with RFC 4648's "extended hex" alphabet in lower case (digits, then
    `a`-`v`: text order is number order): the layout of a ULID.

    The time prefix keeps rows keyed by these ids in creation order in the state database's
    B-trees: executions running at the same time write to the same few pages at the end of
    each index instead of to a random page each, which halves what a group commit writes.
    """

    def new(self, prefix: str) -> str:
        """A fresh id; ids made in a later millisecond sort after it."""
        millis = time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF
        # 128 bits and 2 of padding: 13 lookups of 10 bits (what base64.b32hexencode
        # writes, in a third of its time).
        value = (millis << 80 | int.from_bytes(secrets.token_bytes(10), "big")) << 2
        return f"{prefix}_{''.join([_BASE32_PAIRS[value >> s & 1023] for s in _SHIFTS])}"


class SequentialIds:
    """Predictable ids (`req_000001`, ...); for tests and reproducible runs."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        """The next id for `prefix`."""
        with self._lock:
            n = self._counts.get(prefix, 0) + 1
            self._counts[prefix] = n
        return f"{prefix}_{n:06d}"


def utc(dt: datetime) -> datetime:
    """`dt` as aware UTC (naive values are taken to be UTC already)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
