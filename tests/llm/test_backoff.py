"""`Backoff`: exponential waits with jitter, honouring a server's Retry-After."""

from __future__ import annotations

import random

import pytest

from aifactory.llm import Backoff


def seeded(seed: int) -> random.Random:
    """A repeatable generator: jitter needs spread, not secrecy."""
    return random.Random(seed)  # noqa: S311


def test_bounds_double_and_stop_at_the_maximum() -> None:
    backoff = Backoff(initial_s=0.5, max_s=3.0, jitter_s=0.25)

    assert [backoff.bounds(n) for n in range(1, 5)] == [
        (0.5, 0.75),
        (1.0, 1.25),
        (2.0, 2.25),
        (3.0, 3.25),
    ]


def test_jitter_comes_from_the_generator() -> None:
    backoff = Backoff(initial_s=1.0, max_s=10.0, jitter_s=0.5)

    delays = [backoff.delay(2, rng=seeded(42)) for _ in range(2)]
    expected = seeded(42).uniform(2.0, 2.5)

    assert delays == [expected, expected]
    assert 2.0 < expected < 2.5


def test_delays_spread_over_the_whole_jitter_range() -> None:
    backoff = Backoff(initial_s=1.0, max_s=10.0, jitter_s=1.0)
    rng = seeded(7)

    delays = [backoff.delay(1, rng=rng) for _ in range(200)]

    assert all(1.0 <= d <= 2.0 for d in delays)
    assert min(delays) < 1.1
    assert max(delays) > 1.9


def test_retry_after_is_a_floor_up_to_its_cap() -> None:
    backoff = Backoff(initial_s=0.5, max_s=4.0, jitter_s=0.0, max_retry_after_s=30.0)

    assert backoff.delay(1, retry_after_s=10.0) == 10.0
    assert backoff.delay(1, retry_after_s=0.0) == 0.5
    assert backoff.delay(1, retry_after_s=0.1) == 0.5
    assert backoff.delay(1, retry_after_s=600.0) == 30.0


def test_retry_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        Backoff().delay(0)


@pytest.mark.parametrize("field", ["initial_s", "max_s", "jitter_s", "max_retry_after_s"])
@pytest.mark.parametrize("value", [-1.0, float("nan")])
def test_negative_or_nan_settings_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Backoff(**{field: value})
