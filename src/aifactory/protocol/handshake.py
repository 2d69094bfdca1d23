"""The handshake state machine of one stage: offer → accept → process → acknowledge.

Pure: every transition takes the current `StageHandshake` and returns a new one (or raises).
Both sides use it: a worker host for the handshakes it accepted, the orchestrator for the
attempts it started. The rules it enforces:

- nothing is processed before the worker accepted the current attempt;
- a stage is committed at most once;
- acknowledging again with the same attempt and output is a no-op that returns the stored
  output (so a retried acknowledge over a flaky network is harmless);
- a message from an attempt older than the current one is a `StaleAttemptError` and changes
  nothing (a worker that was timed out and replaced cannot commit over its successor).

```
 IDLE ──offer──▶ OFFERED ──accept──▶ ACCEPTED ──start──▶ PROCESSING ──finish──▶ PROCESSED
                    │                   │                    │                     │
                  reject              fail                 fail               acknowledge
                    ▼                   ▼                    ▼                     ▼
                 REJECTED            FAILED               FAILED               COMMITTED
```
A new attempt may be offered from any state except COMMITTED.
"""

from __future__ import annotations

from enum import StrEnum

import attrs

from .._exceptions import ConflictError, StaleAttemptError
from ..models.storage_ref import StorageRef

__all__ = ["HandshakeState", "StageHandshake"]


class HandshakeState(StrEnum):
    """Where one stage's current attempt stands."""

    IDLE = "idle"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PROCESSING = "processing"
    PROCESSED = "processed"
    COMMITTED = "committed"
    FAILED = "failed"


@attrs.frozen
class StageHandshake:
    """One stage's protocol state: the current attempt, its state and its output."""

    state: HandshakeState = HandshakeState.IDLE
    attempt: int = 0
    output: StorageRef | None = None
    reason: str | None = None

    def _to(
        self,
        state: HandshakeState,
        *,
        output: StorageRef | None = None,
        reason: str | None = None,
    ) -> StageHandshake:
        # Built directly rather than with attrs.evolve, which walks every field by name:
        # each stage makes four transitions on the worker's side.
        return StageHandshake(
            state,
            self.attempt,
            output or self.output,
            reason if reason is not None else self.reason,
        )

    def _require(self, attempt: int, *states: HandshakeState, doing: str) -> None:
        if attempt < self.attempt:
            raise StaleAttemptError(
                f"cannot {doing}: attempt {attempt} was replaced by attempt {self.attempt}",
                details={"attempt": attempt, "current_attempt": self.attempt},
            )
        if attempt != self.attempt or self.state not in states:
            raise ConflictError(
                f"cannot {doing} attempt {attempt} in state {self.state.value}",
                details={"attempt": attempt, "state": self.state.value},
            )

    def offer(self, attempt: int) -> StageHandshake:
        """Propose attempt `attempt`, which must be newer than any before it."""
        if self.state is HandshakeState.COMMITTED:
            raise ConflictError("the stage is already committed", details={"attempt": attempt})
        if attempt <= self.attempt:
            raise StaleAttemptError(
                f"attempt {attempt} is not newer than attempt {self.attempt}",
                details={"attempt": attempt, "current_attempt": self.attempt},
            )
        return StageHandshake(HandshakeState.OFFERED, attempt)

    def accept(self, attempt: int) -> StageHandshake:
        """The worker takes the offered attempt."""
        self._require(attempt, HandshakeState.OFFERED, doing="accept")
        return self._to(HandshakeState.ACCEPTED)

    def reject(self, attempt: int, reason: str) -> StageHandshake:
        """The worker declines the offered attempt."""
        self._require(attempt, HandshakeState.OFFERED, doing="reject")
        return self._to(HandshakeState.REJECTED, reason=reason)

    def start(self, attempt: int) -> StageHandshake:
        """Processing begins; only after acceptance."""
        self._require(attempt, HandshakeState.ACCEPTED, doing="process")
        return self._to(HandshakeState.PROCESSING)

    def finish(self, attempt: int, output: StorageRef) -> StageHandshake:
        """Processing produced `output`."""
        self._require(attempt, HandshakeState.PROCESSING, doing="finish")
        return self._to(HandshakeState.PROCESSED, output=output)

    def fail(self, attempt: int, reason: str) -> StageHandshake:
        """The attempt failed after acceptance."""
        self._require(attempt, HandshakeState.ACCEPTED, HandshakeState.PROCESSING, doing="fail")
        return self._to(HandshakeState.FAILED, reason=reason)

    def acknowledge(self, attempt: int, output: StorageRef) -> tuple[StageHandshake, bool]:
        """Commit the stage with `output`; returns the new state and whether it was a duplicate.

        A duplicate acknowledge (same attempt, same output, already committed) changes nothing.
        Raises `StaleAttemptError` for an older attempt and `ConflictError` for anything else
        out of order or an output that differs from the processed one.
        """
        if self.state is HandshakeState.COMMITTED and attempt == self.attempt:
            if not _same_blob(output, self.output):
                raise ConflictError(
                    "the stage was committed with a different output",
                    details={"attempt": attempt},
                )
            return self, True
        self._require(attempt, HandshakeState.PROCESSED, doing="acknowledge")
        if not _same_blob(output, self.output):
            raise ConflictError(
                "acknowledged output differs from the processed output",
                details={"attempt": attempt},
            )
        return self._to(HandshakeState.COMMITTED), False


def _same_blob(a: StorageRef | None, b: StorageRef | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.uri, a.sha256, a.size) == (b.uri, b.sha256, b.size)
