"""What the runner shares: its dependencies (`Engine`), and a running execution (`Live`)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import attrs

from .._clock import Clock, IdFactory
from ..models import Execution, ExecutionEvent, StagePolicy, StageRun, StorageRef
from ..state.sqlite import SQLiteStore
from ..storage import BlobStore
from .costing import StoragePrices
from .quota import QuotaGate
from .registry import WorkerRegistry
from .retry import RetryPolicy

__all__ = ["DEFAULT_TIMEOUTS", "Engine", "Live"]

#: Used where neither the stage nor the orchestrator's configuration says otherwise.
DEFAULT_TIMEOUTS = StagePolicy(schedule_to_start_s=60.0, start_to_close_s=600.0, heartbeat_s=None)


@attrs.define
class Engine:
    """The orchestrator's dependencies and settings, shared by its parts."""

    store: SQLiteStore
    blobs: BlobStore
    registry: WorkerRegistry
    quota: QuotaGate
    clock: Clock
    ids: IdFactory
    retry: RetryPolicy
    prices: StoragePrices
    timeouts: StagePolicy
    cache_ttl_s: float
    sleep: Callable[[float], Awaitable[None]]
    rng: random.Random
    changed: dict[str, anyio.Event] = attrs.field(factory=dict)

    def touch(self, execution_id: str) -> None:
        """Wake whoever follows the execution's events."""
        event = self.changed.pop(execution_id, None)
        if event is not None:
            event.set()


@attrs.define
class Live:
    """The in-memory side of one execution running in this process."""

    execution: Execution
    runs: dict[str, StageRun]
    outputs: dict[str, StorageRef]
    version: int
    seq: int
    done: anyio.Event
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    stop: bool = False
    cancelled: bool = False
    crash: str | None = None

    def event(
        self, clock: Clock, kind: str, stage_id: str | None = None, **data: Any
    ) -> ExecutionEvent:
        """The next event of this execution."""
        self.seq += 1
        return ExecutionEvent(self.execution.id, self.seq, clock.now(), kind, stage_id, data)
