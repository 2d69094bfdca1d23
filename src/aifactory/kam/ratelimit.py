"""API rate limits per client organisation, by tier (10/30/60/120 requests a minute).

A token bucket per client: it holds up to a minute's allowance and refills continuously, so a
client may burst up to its limit and then goes at the tier's pace. Time comes from the
injected clock, so limits are testable without waiting.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import attrs

from .._clock import Clock
from .._exceptions import QuotaExceededError

__all__ = ["RateLimiter"]

_MAX_BUCKETS = 100_000  # clients remembered at once; the least recently seen are forgotten


@attrs.define
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Counts requests per key against a per-minute limit."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, per_minute: int) -> None:
        """Count one request for `key`. Raises `QuotaExceededError` (with `retry_after_s` in
        its details) when `key` has used its allowance."""
        now = self._clock.now().timestamp()
        rate = per_minute / 60.0
        with self._lock:
            bucket = self._buckets.pop(key, None) or _Bucket(float(per_minute), now)
            bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            self._buckets[key] = bucket
            while len(self._buckets) > _MAX_BUCKETS:
                self._buckets.popitem(last=False)
            if bucket.tokens < 1.0:
                wait = (1.0 - bucket.tokens) / rate
                raise QuotaExceededError(
                    f"rate limit of {per_minute} requests a minute reached; retry in {wait:.1f} s",
                    details={"limit_per_minute": per_minute, "retry_after_s": round(wait, 3)},
                )
            bucket.tokens -= 1.0
