"""API rate limits per client organisation, by tier (10/30/60/120 requests a minute).

A token bucket per client: it holds up to a minute's allowance and refills continuously, so a
client may burst up to its limit and then goes at the tier's pace. The buckets live in the
state store, so that a limit holds across every API replica; what a request does to its
bucket is decided by `models.refill_bucket`, a pure function, and time comes from the
injected clock, so limits are testable without waiting.
"""

from __future__ import annotations

from .._clock import Clock
from .._exceptions import QuotaExceededError
from ..state import Store

__all__ = ["RateLimiter"]


class RateLimiter:
    """Counts requests per key against a per-minute limit, in the state store."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def take(self, key: str, per_minute: int) -> None:
        """Count one request for `key`. Raises `QuotaExceededError` (with `retry_after_s` in
        its details) when `key` has used its allowance."""
        wait = await self._store.take_rate_token(key, per_minute, self._clock.now().timestamp())
        if wait is not None:
            raise QuotaExceededError(
                f"rate limit of {per_minute} requests a minute reached; retry in {wait:.1f} s",
                details={"limit_per_minute": per_minute, "retry_after_s": round(wait, 3)},
            )
