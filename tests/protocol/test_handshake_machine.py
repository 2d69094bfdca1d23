"""The handshake state machine, hammered by a stateful hypothesis test and pinned by examples.

The reference model below is written from the rules in the module docstring, not from the
code: a transition either yields the model's next state or a named error, and an error never
changes anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from aifactory._exceptions import ConflictError, StaleAttemptError
from aifactory.models import StorageRef
from aifactory.protocol.handshake import HandshakeState, StageHandshake

S = HandshakeState


def _kv(uri: str, body: bytes) -> StorageRef:
    return StorageRef.parse(uri, size=len(body), sha256=hashlib.sha256(body).hexdigest())


# Each output carries a label naming the blob it stands for: equal labels are the same blob
# (same location, size and sha256), even when they are distinct objects or differ in media type.
OUTPUTS: list[tuple[str, StorageRef]] = [
    ("inline-a", StorageRef.inline(b"alpha")),
    ("inline-a", StorageRef.inline(b"alpha", "text/plain")),
    ("inline-b", StorageRef.inline(b"beta")),
    ("inline-empty", StorageRef.inline(b"")),
    ("kv-x", _kv("kv://stages/x", b"xxx")),
    ("kv-x", _kv("kv://stages/x", b"xxx")),
    ("kv-x-other", _kv("kv://stages/x", b"a different body")),
    ("kv-y", _kv("kv://stages/y", b"xxx")),
    ("kv-x-bare", StorageRef.parse("kv://stages/x")),
]
LABEL = {id(ref): label for label, ref in OUTPUTS}

outputs = st.sampled_from(OUTPUTS)
reasons = st.sampled_from(["busy", "unsupported input", "timeout", ""])
# Attempts relative to the current one: stale (<0), current (0) and future (>0).
deltas = st.sampled_from([0, 0, 0, 1, -1, 2, -2, 5])
offer_deltas = st.sampled_from([1, 1, 1, 2, 7, 0, -1, -3])


def _fields(hs: StageHandshake) -> tuple[object, ...]:
    return (hs.state, hs.attempt, hs.output, hs.reason)


@attrs.define
class Model:
    """The reference model: what the stage's handshake should be."""

    state: HandshakeState = S.IDLE
    attempt: int = 0
    output: str | None = None  # label of the output blob
    reason: str | None = None

    def require(self, attempt: int, *states: HandshakeState) -> type[Exception] | None:
        if attempt < self.attempt:
            return StaleAttemptError
        if attempt != self.attempt or self.state not in states:
            return ConflictError
        return None


class HandshakeMachine(RuleBasedStateMachine):
    """Drive a `StageHandshake` and a reference model side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.hs = StageHandshake()
        self.model = Model()
        self.accepted_attempts: set[int] = set()
        self.committed: tuple[int, str] | None = None

    # -- helpers --------------------------------------------------------------------------

    def _refused(self, error: type[Exception], call: Callable[..., object], *args: object) -> None:
        """`call(*args)` must raise `error` and leave the (frozen) value untouched."""
        before = _fields(self.hs)
        old = self.hs
        with pytest.raises(error):
            call(*args)
        assert _fields(old) == before
        assert self.hs is old

    def _moved(self, new: StageHandshake) -> None:
        assert isinstance(new, StageHandshake)
        self.hs = new
        self._check_matches_model()

    def _check_matches_model(self) -> None:
        assert self.hs.state is self.model.state
        assert self.hs.attempt == self.model.attempt
        assert self.hs.reason == self.model.reason
        if self.model.output is None:
            assert self.hs.output is None
        else:
            assert self.hs.output is not None
            assert LABEL[id(self.hs.output)] == self.model.output

    # -- rules ----------------------------------------------------------------------------

    @rule(delta=offer_deltas)
    def offer(self, delta: int) -> None:
        attempt = self.model.attempt + delta
        if self.model.state is S.COMMITTED:
            self._refused(ConflictError, self.hs.offer, attempt)
            return
        if attempt <= self.model.attempt:
            self._refused(StaleAttemptError, self.hs.offer, attempt)
            return
        self.model = Model(S.OFFERED, attempt)
        self._moved(self.hs.offer(attempt))

    @rule(delta=deltas)
    def accept(self, delta: int) -> None:
        attempt = self.model.attempt + delta
        error = self.model.require(attempt, S.OFFERED)
        if error:
            self._refused(error, self.hs.accept, attempt)
            return
        self.model.state = S.ACCEPTED
        self.accepted_attempts.add(attempt)
        self._moved(self.hs.accept(attempt))

    @rule(delta=deltas, reason=reasons)
    def reject(self, delta: int, reason: str) -> None:
        attempt = self.model.attempt + delta
        error = self.model.require(attempt, S.OFFERED)
        if error:
            self._refused(error, self.hs.reject, attempt, reason)
            return
        self.model.state, self.model.reason = S.REJECTED, reason
        self._moved(self.hs.reject(attempt, reason))

    @rule(delta=deltas)
    def start(self, delta: int) -> None:
        attempt = self.model.attempt + delta
        error = self.model.require(attempt, S.ACCEPTED)
        if error:
            self._refused(error, self.hs.start, attempt)
            return
        new = self.hs.start(attempt)
        # Nothing is processed before the worker accepted this very attempt.
        assert attempt in self.accepted_attempts
        assert self.hs.state is S.ACCEPTED
        assert self.hs.attempt == attempt
        self.model.state = S.PROCESSING
        self._moved(new)

    @rule(delta=deltas, output=outputs)
    def finish(self, delta: int, output: tuple[str, StorageRef]) -> None:
        attempt = self.model.attempt + delta
        label, ref = output
        error = self.model.require(attempt, S.PROCESSING)
        if error:
            self._refused(error, self.hs.finish, attempt, ref)
            return
        self.model.state, self.model.output = S.PROCESSED, label
        self._moved(self.hs.finish(attempt, ref))

    @rule(delta=deltas, reason=reasons)
    def fail(self, delta: int, reason: str) -> None:
        attempt = self.model.attempt + delta
        error = self.model.require(attempt, S.ACCEPTED, S.PROCESSING)
        if error:
            self._refused(error, self.hs.fail, attempt, reason)
            return
        self.model.state, self.model.reason = S.FAILED, reason
        self._moved(self.hs.fail(attempt, reason))

    @rule(delta=deltas, output=outputs)
    def acknowledge(self, delta: int, output: tuple[str, StorageRef]) -> None:
        attempt = self.model.attempt + delta
        label, ref = output
        if self.model.state is S.COMMITTED and attempt == self.model.attempt:
            if label != self.model.output:
                self._refused(ConflictError, self.hs.acknowledge, attempt, ref)
                return
            before = _fields(self.hs)
            new, duplicate = self.hs.acknowledge(attempt, ref)
            assert duplicate is True
            assert _fields(new) == before
            self._moved(new)
            return
        error = self.model.require(attempt, S.PROCESSED)
        if error is None and label != self.model.output:
            error = ConflictError
        if error:
            self._refused(error, self.hs.acknowledge, attempt, ref)
            return
        new, duplicate = self.hs.acknowledge(attempt, ref)
        assert duplicate is False
        self.model.state = S.COMMITTED
        self.committed = (attempt, label)
        self._moved(new)

    @rule(output=outputs)
    def advance(self, output: tuple[str, StorageRef]) -> None:
        """Take the next step of the happy path for the current attempt.

        The other rules draw attempts at random, so on their own they rarely get as far as
        PROCESSED and COMMITTED; this rule makes runs get there regularly.
        """
        state = self.model.state
        if state in (S.IDLE, S.REJECTED, S.FAILED):
            self.offer(1)
        elif state is S.OFFERED:
            self.accept(0)
        elif state is S.ACCEPTED:
            self.start(0)
        elif state is S.PROCESSING:
            self.finish(0, output)
        else:  # PROCESSED or COMMITTED: acknowledge with another object for the same blob
            same = [o for o in OUTPUTS if o[0] == self.model.output]
            self.acknowledge(0, same[-1])

    @rule()
    def replay_with_a_stale_attempt_after_commit(self) -> None:
        """Once committed, every older attempt's acknowledge is stale."""
        if self.model.state is not S.COMMITTED:
            return
        for _, ref in OUTPUTS:
            self._refused(StaleAttemptError, self.hs.acknowledge, self.model.attempt - 1, ref)

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        self._check_matches_model()

    @invariant()
    def committed_at_most_once(self) -> None:
        if self.committed is not None:
            attempt, label = self.committed
            assert self.hs.state is S.COMMITTED
            assert self.hs.attempt == attempt
            assert self.hs.output is not None
            assert LABEL[id(self.hs.output)] == label

    @invariant()
    def output_only_after_processing(self) -> None:
        if self.hs.state in (S.PROCESSED, S.COMMITTED):
            assert self.hs.output is not None
        else:
            assert self.hs.output is None


HandshakeMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestHandshakeMachine = HandshakeMachine.TestCase


# -- examples, one or more per rule -----------------------------------------------------------

OUT = StorageRef.inline(b"result")
OTHER = StorageRef.inline(b"another result")


def processed(attempt: int = 1, output: StorageRef = OUT) -> StageHandshake:
    return StageHandshake().offer(attempt).accept(attempt).start(attempt).finish(attempt, output)


def committed(attempt: int = 1, output: StorageRef = OUT) -> StageHandshake:
    new, duplicate = processed(attempt, output).acknowledge(attempt, output)
    assert not duplicate
    return new


def test_a_fresh_handshake_is_idle_at_attempt_zero() -> None:
    hs = StageHandshake()
    assert (hs.state, hs.attempt, hs.output, hs.reason) == (S.IDLE, 0, None, None)


def test_the_happy_path_commits_the_processed_output() -> None:
    hs = committed(1, OUT)
    assert hs.state is S.COMMITTED
    assert hs.attempt == 1
    assert hs.output == OUT


def test_offer_sets_the_attempt_and_clears_the_previous_outcome() -> None:
    failed = StageHandshake().offer(1).accept(1).fail(1, "boom")
    assert failed.reason == "boom"
    again = failed.offer(2)
    assert (again.state, again.attempt, again.output, again.reason) == (S.OFFERED, 2, None, None)
    assert failed.state is S.FAILED  # the old value is untouched


@pytest.mark.parametrize("attempt", [0, -1])
def test_offer_of_attempt_not_newer_than_idle_is_stale(attempt: int) -> None:
    with pytest.raises(StaleAttemptError):
        StageHandshake().offer(attempt)


@pytest.mark.parametrize("attempt", [3, 2, 1])
def test_offer_of_the_same_or_an_older_attempt_is_stale(attempt: int) -> None:
    hs = StageHandshake().offer(3)
    with pytest.raises(StaleAttemptError) as info:
        hs.offer(attempt)
    assert info.value.details == {"attempt": attempt, "current_attempt": 3}
    assert (hs.state, hs.attempt) == (S.OFFERED, 3)


def test_offer_may_skip_attempt_numbers() -> None:
    assert StageHandshake().offer(1).offer(9).attempt == 9


@pytest.mark.parametrize("attempt", [0, 1, 2, 100])
def test_offer_after_commit_is_a_conflict(attempt: int) -> None:
    hs = committed(1)
    with pytest.raises(ConflictError):
        hs.offer(attempt)
    assert hs.state is S.COMMITTED


@pytest.mark.parametrize(
    "make",
    [
        lambda: StageHandshake().offer(1).reject(1, "busy"),
        lambda: StageHandshake().offer(1).accept(1).fail(1, "x"),
        lambda: StageHandshake().offer(1).accept(1),
        lambda: StageHandshake().offer(1).accept(1).start(1),
        lambda: processed(1),
    ],
    ids=["rejected", "failed", "accepted", "processing", "processed"],
)
def test_a_new_attempt_may_be_offered_from_any_state_but_committed(
    make: Callable[[], StageHandshake],
) -> None:
    hs = make()
    new = hs.offer(2)
    assert (new.state, new.attempt, new.output) == (S.OFFERED, 2, None)


def test_accept_only_the_offered_attempt() -> None:
    hs = StageHandshake().offer(2)
    assert hs.accept(2).state is S.ACCEPTED
    with pytest.raises(StaleAttemptError):
        hs.accept(1)
    with pytest.raises(ConflictError) as info:
        hs.accept(3)
    assert not isinstance(info.value, StaleAttemptError)
    with pytest.raises(ConflictError):
        StageHandshake().accept(0)  # nothing offered
    with pytest.raises(ConflictError):
        hs.accept(2).accept(2)  # accepted twice


def test_reject_records_the_reason_and_blocks_processing() -> None:
    hs = StageHandshake().offer(1).reject(1, "over capacity")
    assert (hs.state, hs.reason) == (S.REJECTED, "over capacity")
    with pytest.raises(ConflictError):
        hs.start(1)
    with pytest.raises(ConflictError):
        hs.accept(1)
    with pytest.raises(ConflictError):
        StageHandshake().offer(1).accept(1).reject(1, "too late")


@pytest.mark.parametrize(
    "make",
    [
        StageHandshake,
        lambda: StageHandshake().offer(1),
        lambda: StageHandshake().offer(1).reject(1, "no"),
        lambda: StageHandshake().offer(1).accept(1).fail(1, "no"),
    ],
    ids=["idle", "offered", "rejected", "failed"],
)
def test_nothing_is_processed_before_acceptance(make: Callable[[], StageHandshake]) -> None:
    hs = make()
    before = _fields(hs)
    with pytest.raises(ConflictError):
        hs.start(hs.attempt)
    assert _fields(hs) == before


def test_start_of_an_older_accepted_attempt_is_stale() -> None:
    hs = StageHandshake().offer(1).accept(1).offer(2)
    with pytest.raises(StaleAttemptError):
        hs.start(1)
    with pytest.raises(ConflictError):
        hs.start(2)  # offered, not yet accepted


def test_finish_only_while_processing() -> None:
    accepted = StageHandshake().offer(1).accept(1)
    with pytest.raises(ConflictError):
        accepted.finish(1, OUT)
    done = accepted.start(1).finish(1, OUT)
    assert (done.state, done.output) == (S.PROCESSED, OUT)
    with pytest.raises(ConflictError):
        done.finish(1, OTHER)
    assert done.output == OUT


def test_fail_from_accepted_or_processing_only() -> None:
    accepted = StageHandshake().offer(1).accept(1)
    assert accepted.fail(1, "a").state is S.FAILED
    assert accepted.start(1).fail(1, "b").reason == "b"
    with pytest.raises(ConflictError):
        StageHandshake().offer(1).fail(1, "not accepted yet")
    with pytest.raises(ConflictError):
        processed(1).fail(1, "too late")
    with pytest.raises(ConflictError):
        committed(1).fail(1, "too late")
    with pytest.raises(StaleAttemptError):
        accepted.offer(2).fail(1, "stale")


def test_acknowledge_before_processing_is_a_conflict() -> None:
    hs = StageHandshake().offer(1).accept(1).start(1)
    with pytest.raises(ConflictError):
        hs.acknowledge(1, OUT)
    assert hs.state is S.PROCESSING


def test_acknowledge_with_a_different_output_is_refused() -> None:
    hs = processed(1, OUT)
    with pytest.raises(ConflictError):
        hs.acknowledge(1, OTHER)
    assert hs.state is S.PROCESSED


def test_acknowledge_compares_blobs_not_objects() -> None:
    same_blob = StorageRef.inline(b"result", "text/markdown")
    new, duplicate = processed(1, OUT).acknowledge(1, same_blob)
    assert new.state is S.COMMITTED
    assert duplicate is False


def test_acknowledge_of_a_kv_output_must_match_its_digest() -> None:
    ref = _kv("kv://stages/exec-1/report", b"report body")
    hs = processed(1, ref)
    tampered = _kv("kv://stages/exec-1/report", b"another body")
    with pytest.raises(ConflictError):
        hs.acknowledge(1, tampered)
    elsewhere = _kv("kv://stages/exec-1/other", b"report body")
    with pytest.raises(ConflictError):
        hs.acknowledge(1, elsewhere)
    new, _ = hs.acknowledge(1, StorageRef.parse(ref.uri, size=ref.size, sha256=ref.sha256))
    assert new.state is S.COMMITTED


def test_a_duplicate_acknowledge_is_a_no_op() -> None:
    hs = committed(2, OUT)
    again, duplicate = hs.acknowledge(2, StorageRef.inline(b"result"))
    assert duplicate is True
    assert again == hs
    assert _fields(again) == (S.COMMITTED, 2, OUT, None)


def test_a_duplicate_acknowledge_with_another_output_is_a_conflict() -> None:
    hs = committed(1, OUT)
    with pytest.raises(ConflictError):
        hs.acknowledge(1, OTHER)
    assert hs.output == OUT


def test_acknowledge_from_a_replaced_attempt_is_stale() -> None:
    # Attempt 1 was timed out and replaced by attempt 2, which committed.
    hs = committed(2, OTHER)
    with pytest.raises(StaleAttemptError) as info:
        hs.acknowledge(1, OUT)
    assert info.value.details == {"attempt": 1, "current_attempt": 2}
    assert _fields(hs) == (S.COMMITTED, 2, OTHER, None)


def test_a_replaced_attempt_cannot_commit_over_its_successor() -> None:
    hs = processed(1, OUT).offer(2)
    with pytest.raises(StaleAttemptError):
        hs.acknowledge(1, OUT)
    assert (hs.state, hs.attempt, hs.output) == (S.OFFERED, 2, None)


def test_acknowledge_of_a_future_attempt_is_a_conflict() -> None:
    hs = committed(1)
    with pytest.raises(ConflictError) as info:
        hs.acknowledge(2, OUT)
    assert not isinstance(info.value, StaleAttemptError)


def test_handshakes_are_frozen_values() -> None:
    hs = StageHandshake()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        hs.state = S.COMMITTED  # type: ignore[misc]
