"""The retry policy, in Temporal's shape, carried out by tenacity: for stages, model calls and
requests that never left.

`RetryPolicy` holds the decisions (is this error worth another try, how long to wait before
attempt n+1); `RetryPolicy.retrying()` turns them into a tenacity `AsyncRetrying` whose sleep
and randomness are injected, so backoff is testable without sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import tenacity

if TYPE_CHECKING:
    from .models.work import StagePolicy

from ._exceptions import (
    AIFactoryError,
    AuthenticationError,
    BadInputError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
)

__all__ = ["NEVER_RETRIED", "RetryPolicy"]

#: Errors another attempt cannot fix: who you are, what you may do, what you asked for,
#: what state things are in, and what you may spend.
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    AuthenticationError,
    PermissionDeniedError,
    BadInputError,
    NotFoundError,
    ConflictError,
    QuotaExceededError,
)

Sleep = Callable[[float], Awaitable[None]]
BeforeSleep = Callable[[int, BaseException, float], Awaitable[None]]
T = TypeVar("T")


@attrs.frozen
class RetryPolicy:
    """When and how often a failed stage attempt is tried again.

    The wait after failed attempt `n` (1-based) is
    `min(initial_interval_s * backoff_coefficient ** (n - 1), maximum_interval_s)`, spread by
    ±`jitter` (a fraction) so that stages failing together do not retry in lockstep, and
    never above `maximum_interval_s`. `maximum_attempts` counts every attempt (0: unlimited).
    Errors of the `non_retryable` types, or whose `code` is in `non_retryable_codes`, are
    never retried; with `only` given, nothing but errors of those types is.
    """

    initial_interval_s: float = 0.5
    backoff_coefficient: float = 2.0
    maximum_interval_s: float = 30.0
    maximum_attempts: int = 3
    jitter: float = 0.1
    non_retryable: tuple[type[BaseException], ...] = NEVER_RETRIED
    non_retryable_codes: tuple[str, ...] = ()
    only: tuple[type[BaseException], ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.initial_interval_s < 0 or self.maximum_interval_s < self.initial_interval_s:
            raise BadInputError("retry intervals need 0 <= initial <= maximum")
        if self.backoff_coefficient < 1 or not 0 <= self.jitter < 1 or self.maximum_attempts < 0:
            raise BadInputError("retry needs coefficient >= 1, 0 <= jitter < 1, attempts >= 0")

    def for_stage(self, policy: StagePolicy) -> RetryPolicy:
        """This policy with a stage's own overrides applied."""
        changes: dict[str, Any] = {
            name: getattr(policy, name)
            for name in (
                "maximum_attempts",
                "initial_interval_s",
                "backoff_coefficient",
                "maximum_interval_s",
            )
            if getattr(policy, name) is not None
        }
        return attrs.evolve(self, **changes) if changes else self

    def is_retryable(self, error: BaseException) -> bool:
        """Whether another attempt could succeed where this error happened."""
        if isinstance(error, self.non_retryable):
            return False
        if self.only and not isinstance(error, self.only):
            return False
        return not (isinstance(error, AIFactoryError) and error.code in self.non_retryable_codes)

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        """Whether to try again after attempt `attempt` (1-based) failed with `error`."""
        more = self.maximum_attempts == 0 or attempt < self.maximum_attempts
        return more and self.is_retryable(error)

    def delay_bounds(self, attempt: int) -> tuple[float, float]:
        """The smallest and largest wait after failed attempt `attempt`."""
        try:
            growth = self.backoff_coefficient ** max(0, attempt - 1)
        except OverflowError:  # late attempts of an unlimited policy: saturated long ago
            growth = float("inf")
        base = (
            0.0
            if self.initial_interval_s == 0
            else min(self.initial_interval_s * growth, self.maximum_interval_s)
        )
        return base * (1 - self.jitter), min(base * (1 + self.jitter), self.maximum_interval_s)

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """A wait after failed attempt `attempt`, within `delay_bounds(attempt)`."""
        low, high = self.delay_bounds(attempt)
        return low + (high - low) * (rng or random).random()

    def retrying(
        self,
        *,
        sleep: Sleep,
        rng: random.Random | None = None,
        before_sleep: BeforeSleep | None = None,
    ) -> tenacity.AsyncRetrying:
        """A tenacity loop that carries out this policy.

        `before_sleep(attempt, error, delay_s)` is awaited before each wait (to record the
        retry). The last error is re-raised when the policy gives up.
        """

        def wait(state: tenacity.RetryCallState) -> float:
            return self.delay_s(state.attempt_number, rng)

        def retry(state: tenacity.RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            # Only errors are retried: cancellation (a BaseException) must always propagate.
            return isinstance(error, Exception) and self.should_retry(state.attempt_number, error)

        async def announce(state: tenacity.RetryCallState) -> None:
            if before_sleep is not None and state.outcome is not None:
                error = state.outcome.exception()
                assert error is not None
                assert state.next_action is not None
                await before_sleep(state.attempt_number, error, state.next_action.sleep)

        return tenacity.AsyncRetrying(
            sleep=sleep, wait=wait, retry=retry, before_sleep=announce, reraise=True
        )

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        sleep: Sleep,
        rng: random.Random | None = None,
        before_sleep: BeforeSleep | None = None,
    ) -> T:
        """Await `attempt()` until it returns or this policy gives up (re-raising its error).

        Most first tries succeed, so the first runs outside tenacity (whose loop costs about
        16 µs to set up); tenacity takes over only when it fails, counting it as attempt 1.
        """
        try:
            return await attempt()
        except Exception as exc:
            failed: Exception | None = exc
        async for state in self.retrying(sleep=sleep, rng=rng, before_sleep=before_sleep):
            with state:
                if failed is not None:
                    error, failed = failed, None
                    raise error
                return await attempt()
        raise AssertionError("tenacity re-raises the last error when it gives up")
