"""`Backoff`: how long to wait before retrying a model call that failed transiently.

Pure decision logic, no I/O: the provider's retry loop asks `delay` and sleeps itself, so
tests can inject a recording sleep and check the numbers.
"""

from __future__ import annotations

import random

import attrs

__all__ = ["Backoff"]


def _not_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


@attrs.frozen
class Backoff:
    """Exponential backoff with additive jitter, honouring a server's `Retry-After`.

    Retry number `n` (1 for the first retry) waits
    `min(max_s, initial_s * 2 ** (n - 1)) + uniform(0, jitter_s)` seconds. When the server
    said how long to wait (`Retry-After`), the wait is at least that, up to
    `max_retry_after_s`: a server asking for longer gets retried sooner, and most likely
    refuses again, which the retry limit then ends.

    Raises `ValueError` for a negative or NaN setting.
    """

    initial_s: float = attrs.field(default=0.5, validator=_not_negative)
    max_s: float = attrs.field(default=8.0, validator=_not_negative)
    jitter_s: float = attrs.field(default=0.5, validator=_not_negative)
    max_retry_after_s: float = attrs.field(default=60.0, validator=_not_negative)

    def bounds(self, retry_number: int) -> tuple[float, float]:
        """The least and the most `delay` can be for retry `retry_number`, without `Retry-After`.

        Raises `ValueError` when `retry_number` is less than 1.
        """
        if retry_number < 1:
            raise ValueError(f"retry numbers start at 1, got {retry_number}")
        base = min(self.max_s, self.initial_s * 2.0 ** (retry_number - 1))
        return base, base + self.jitter_s

    def delay(
        self,
        retry_number: int,
        retry_after_s: float | None = None,
        *,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait before retry `retry_number` (1, 2, …).

        `retry_after_s` is what the server asked for, if anything; `rng` picks the jitter
        (the `random` module's generator by default).

        Raises `ValueError` when `retry_number` is less than 1.
        """
        low, high = self.bounds(retry_number)
        # Jitter spreads retries of concurrent callers; it guards nothing, so `random` is fine.
        wait = (rng or random).uniform(low, high)
        if retry_after_s is not None and retry_after_s > 0:
            wait = max(wait, min(retry_after_s, self.max_retry_after_s))
        return wait
