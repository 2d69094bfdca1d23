"""Stage retry policy: pure decisions on whether and when to try a stage again."""

from __future__ import annotations

import attrs

from .._exceptions import (
    AuthenticationError,
    BadInputError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
)

__all__ = ["RetryPolicy"]

NEVER_RETRIED: tuple[type[BaseException], ...] = (
    AuthenticationError,
    PermissionDeniedError,
    BadInputError,
    NotFoundError,
    ConflictError,
    QuotaExceededError,
)


@attrs.frozen
class RetryPolicy:
    """Exponential backoff in Temporal's shape.

    Attempt `n` (1-based) that failed is followed by a wait of
    `min(initial_interval_s * backoff_coefficient ** (n - 1), maximum_interval_s)` seconds,
    up to `maximum_attempts` attempts in all. Errors of the `non_retryable` types (auth,
    permission, bad input, conflicts, quota) are never retried: another try cannot fix them.
    """

    maximum_attempts: int = 3
    initial_interval_s: float = 0.1
    backoff_coefficient: float = 2.0
    maximum_interval_s: float = 10.0
    non_retryable: tuple[type[BaseException], ...] = NEVER_RETRIED

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        """Whether to try again after attempt `attempt` failed with `error`."""
        return attempt < self.maximum_attempts and not isinstance(error, self.non_retryable)

    def delay_s(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` before the next."""
        delay = self.initial_interval_s * self.backoff_coefficient ** max(0, attempt - 1)
        return float(min(delay, self.maximum_interval_s))
