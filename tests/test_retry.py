"""RetryPolicy: bounded, non-decreasing, jittered backoff; never retry what cannot succeed."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifactory._exceptions import (
    AIFactoryError,
    AuthenticationError,
    BadInputError,
    ConflictError,
    HandshakeRejectedError,
    InputRejectedError,
    IntegrityError,
    NotFoundError,
    ParameterError,
    PermissionDeniedError,
    QuotaExceededError,
    SessionExpiredError,
    StageFailedError,
    StageTimeoutError,
    StaleAttemptError,
    StorageError,
    TransportError,
    UnsafeKeyError,
    WorkerError,
)
from aifactory._retry import RetryPolicy
from aifactory.models import StagePolicy


@st.composite
def policies(draw: st.DrawFn, jitter: bool = True, unlimited: bool = True) -> RetryPolicy:
    """Valid policies: 0 <= initial <= maximum, coefficient >= 1, 0 <= jitter < 1."""
    initial = draw(st.floats(min_value=0.0, max_value=30.0))
    maximum = draw(st.floats(min_value=initial, max_value=600.0))
    return RetryPolicy(
        initial_interval_s=initial,
        backoff_coefficient=draw(st.floats(min_value=1.0, max_value=10.0)),
        maximum_interval_s=maximum,
        maximum_attempts=draw(st.integers(min_value=0 if unlimited else 1, max_value=20)),
        jitter=draw(st.floats(min_value=0.0, max_value=0.99)) if jitter else 0.0,
    )


# Written out by hand (subclasses included), not taken from the module's tuple.
NEVER_RETRIED = [
    AuthenticationError("who?"),
    SessionExpiredError("expired"),
    PermissionDeniedError("no"),
    BadInputError("bad"),
    ParameterError("bad parameter"),
    InputRejectedError("worker refused the input"),
    UnsafeKeyError("../etc"),
    NotFoundError("gone"),
    ConflictError("wrong state"),
    StaleAttemptError("replaced"),
    QuotaExceededError("over budget"),
]
RETRIED = [
    WorkerError("worker down"),
    HandshakeRejectedError("busy"),
    StageFailedError("crashed"),
    StageTimeoutError("heartbeat ran out"),
    TransportError("unreachable"),
    StorageError("disk"),
    IntegrityError("bad digest"),
    AIFactoryError("unknown"),
    TimeoutError("slow"),
    OSError("socket"),
]


def seeded(seed: int) -> random.Random:
    """A reproducible generator for jitter (not for anything secret)."""
    return random.Random(seed)  # noqa: S311


never_retried = st.sampled_from(NEVER_RETRIED)
retried = st.sampled_from(RETRIED)
attempts = st.integers(min_value=-5, max_value=200)


# -- backoff ---------------------------------------------------------------------------------


@given(policies(jitter=False), attempts)
@settings(max_examples=200)
def test_without_jitter_the_delay_stays_within_initial_and_maximum(
    policy: RetryPolicy, attempt: int
) -> None:
    delay = policy.delay_s(attempt)
    assert isinstance(delay, float)
    assert policy.initial_interval_s <= delay <= policy.maximum_interval_s
    assert policy.delay_bounds(attempt) == (delay, delay)


@given(policies(jitter=False), attempts)
@settings(max_examples=200)
def test_without_jitter_the_delay_never_decreases(policy: RetryPolicy, attempt: int) -> None:
    assert policy.delay_s(attempt) <= policy.delay_s(attempt + 1)


@given(policies(), attempts, st.integers(min_value=0, max_value=2**32))
@settings(max_examples=200)
def test_a_jittered_delay_stays_within_its_bounds(
    policy: RetryPolicy, attempt: int, seed: int
) -> None:
    low, high = policy.delay_bounds(attempt)
    assert policy.initial_interval_s * (1 - policy.jitter) <= low <= high
    assert high <= policy.maximum_interval_s
    delay = policy.delay_s(attempt, seeded(seed))
    assert low <= delay <= high
    # The same seed gives the same delay: backoff is reproducible in tests.
    assert policy.delay_s(attempt, seeded(seed)) == delay


@given(policies(), attempts)
@settings(max_examples=200)
def test_delay_bounds_never_decrease_with_the_attempt(policy: RetryPolicy, attempt: int) -> None:
    low, high = policy.delay_bounds(attempt)
    next_low, next_high = policy.delay_bounds(attempt + 1)
    assert low <= next_low
    assert high <= next_high


@given(policies(), st.integers(min_value=1, max_value=10**6))
@settings(max_examples=100)
def test_delay_saturates_at_the_maximum_for_late_attempts(
    policy: RetryPolicy, attempt: int
) -> None:
    # `maximum_attempts=0` retries without limit, so late attempts do happen; the backoff
    # must saturate at the maximum instead of overflowing a float.
    low, high = policy.delay_bounds(attempt)
    assert low <= policy.delay_s(attempt, seeded(0)) <= high <= policy.maximum_interval_s


def test_delay_grows_from_the_initial_interval_up_to_the_cap() -> None:
    policy = RetryPolicy(
        initial_interval_s=0.5, backoff_coefficient=2.0, maximum_interval_s=5.0, jitter=0.0
    )
    assert [policy.delay_s(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay_s(0) == 0.5  # before the first attempt: the initial interval


def test_jitter_spreads_the_delay_around_the_backoff() -> None:
    policy = RetryPolicy(
        initial_interval_s=1.0, backoff_coefficient=2.0, maximum_interval_s=10.0, jitter=0.1
    )
    assert policy.delay_bounds(1) == pytest.approx((0.9, 1.1))
    assert policy.delay_bounds(3) == pytest.approx((3.6, 4.4))
    assert policy.delay_bounds(9) == pytest.approx((9.0, 10.0))  # never above the maximum
    delays = {policy.delay_s(2, seeded(seed)) for seed in range(20)}
    assert len(delays) > 1
    assert all(1.8 <= d <= 2.2 for d in delays)


@pytest.mark.parametrize(
    "options",
    [
        {"initial_interval_s": -0.1},
        {"initial_interval_s": 5.0, "maximum_interval_s": 1.0},
        {"backoff_coefficient": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.0},
        {"maximum_attempts": -1},
    ],
)
def test_an_invalid_policy_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(BadInputError):
        RetryPolicy(**options)


# -- whether to retry ------------------------------------------------------------------------


def test_default_policy() -> None:
    policy = RetryPolicy()
    assert policy.maximum_attempts == 3
    assert policy.should_retry(2, WorkerError("x")) is True
    assert policy.should_retry(3, WorkerError("x")) is False
    low, high = policy.delay_bounds(1)
    assert low <= policy.initial_interval_s <= high


@given(policies(), never_retried, st.integers(min_value=-5, max_value=100))
@settings(max_examples=200)
def test_non_retryable_errors_are_never_retried(
    policy: RetryPolicy, error: BaseException, attempt: int
) -> None:
    assert policy.is_retryable(error) is False
    assert policy.should_retry(attempt, error) is False


@given(policies(), retried, st.integers(min_value=1, max_value=100))
@settings(max_examples=200)
def test_retryable_errors_are_retried_until_the_last_attempt(
    policy: RetryPolicy, error: BaseException, attempt: int
) -> None:
    assert policy.is_retryable(error) is True
    more = policy.maximum_attempts == 0 or attempt < policy.maximum_attempts
    assert policy.should_retry(attempt, error) is more


@given(policies(jitter=False, unlimited=False), st.lists(retried, min_size=30, max_size=30))
@settings(max_examples=100)
def test_a_stage_that_keeps_failing_is_tried_exactly_maximum_attempts_times(
    policy: RetryPolicy, errors: list[BaseException]
) -> None:
    tried = 0
    waited: list[float] = []
    for error in errors:
        tried += 1
        if not policy.should_retry(tried, error):
            break
        waited.append(policy.delay_s(tried))
    assert tried == policy.maximum_attempts
    assert len(waited) == policy.maximum_attempts - 1
    assert waited == sorted(waited)


@given(retried, st.integers(min_value=1, max_value=10**6))
@settings(max_examples=50)
def test_zero_maximum_attempts_means_unlimited(error: BaseException, attempt: int) -> None:
    assert RetryPolicy(maximum_attempts=0).should_retry(attempt, error) is True


@given(policies(), st.lists(retried, max_size=5), never_retried)
@settings(max_examples=100)
def test_a_non_retryable_error_stops_at_once(
    policy: RetryPolicy, transient: list[BaseException], fatal: BaseException
) -> None:
    tried = 0
    for error in [*transient, fatal, *transient]:
        tried += 1
        if not policy.should_retry(tried, error):
            break
    assert tried <= len(transient) + 1
    if policy.maximum_attempts:
        assert tried <= policy.maximum_attempts


def test_custom_non_retryable_types() -> None:
    policy = RetryPolicy(non_retryable=(TransportError,))
    assert policy.should_retry(1, TransportError("down")) is False
    assert policy.should_retry(1, BadInputError("bad")) is True


def test_non_retryable_codes() -> None:
    policy = RetryPolicy(non_retryable_codes=("stage_failed",))
    assert policy.should_retry(1, StageFailedError("crashed")) is False
    assert policy.should_retry(1, WorkerError("down")) is True
    assert policy.should_retry(1, TimeoutError("no code")) is True


def test_a_single_attempt_policy_never_retries() -> None:
    policy = RetryPolicy(maximum_attempts=1)
    assert policy.should_retry(1, WorkerError("x")) is False


# -- per-stage overrides ---------------------------------------------------------------------


def test_stage_overrides_replace_only_what_they_set() -> None:
    base = RetryPolicy(initial_interval_s=0.5, maximum_interval_s=30.0, maximum_attempts=3)
    assert base.for_stage(StagePolicy()) == base
    tuned = base.for_stage(StagePolicy(maximum_attempts=7, backoff_coefficient=3.0))
    assert (tuned.maximum_attempts, tuned.backoff_coefficient) == (7, 3.0)
    assert (tuned.initial_interval_s, tuned.maximum_interval_s) == (0.5, 30.0)
    assert (tuned.jitter, tuned.non_retryable) == (base.jitter, base.non_retryable)
    assert base.maximum_attempts == 3  # the base policy is a value: unchanged


def test_an_invalid_stage_override_is_refused() -> None:
    with pytest.raises(BadInputError):
        RetryPolicy().for_stage(StagePolicy(backoff_coefficient=0.1))


@pytest.mark.anyio
async def test_call_counts_the_first_try_as_attempt_one_and_gives_up_after_the_last() -> None:
    policy = RetryPolicy(initial_interval_s=1.0, maximum_interval_s=4.0, jitter=0.0)
    tries: list[int] = []
    announced: list[tuple[int, str, float]] = []
    slept: list[float] = []

    async def attempt() -> str:
        tries.append(len(tries) + 1)
        raise TransportError(f"try {len(tries)}")

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def before_sleep(number: int, error: BaseException, delay: float) -> None:
        announced.append((number, str(error), delay))

    with pytest.raises(TransportError, match="try 3"):
        await policy.call(attempt, sleep=sleep, before_sleep=before_sleep)
    assert tries == [1, 2, 3]
    assert announced == [(1, "try 1", 1.0), (2, "try 2", 2.0)]
    assert slept == [1.0, 2.0]


@pytest.mark.anyio
async def test_call_returns_what_a_later_attempt_returns_and_never_retries_a_refusal() -> None:
    policy = RetryPolicy(initial_interval_s=0.0, maximum_interval_s=0.0)
    answers: list[Exception | str] = [TransportError("down"), "up"]

    async def flaky() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def no_sleep(seconds: float) -> None:
        pass

    assert await policy.call(flaky, sleep=no_sleep) == "up"

    refusals = 0

    async def refused() -> str:
        nonlocal refusals
        refusals += 1
        raise BadInputError("no")

    with pytest.raises(BadInputError):
        await policy.call(refused, sleep=no_sleep)
    assert refusals == 1
