"""Executions, stage runs, checkpoints, usage and cost."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from . import _html
from ._display import (
    CONTEXT,
    ERROR,
    MAPPING,
    bounded_repr,
    compact,
    decimal_repr,
    enum_repr,
    iso_repr,
    ref_repr,
    refs_repr,
    template_repr,
)
from .enums import ExecutionStatus, StageStatus
from .storage_ref import StorageRef
from .work import Template

__all__ = [
    "Checkpoint",
    "Cost",
    "Execution",
    "ExecutionEvent",
    "ExecutionOwner",
    "StageRun",
    "Usage",
    "WorkerStatus",
]


@attrs.frozen
class Usage:
    """Measured consumption of one stage (or a sum of stages). `model_calls` counts every
    model call billed, the ones whose reply was of no use included."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    bytes_stored: int = 0
    compute_ms: int = 0
    model_calls: int = 0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.bytes_stored + other.bytes_stored,
            self.compute_ms + other.compute_ms,
            self.model_calls + other.model_calls,
        )


@attrs.frozen
class Cost:
    """Cost in USD, split by what it paid for."""

    llm_usd: Decimal = attrs.field(default=Decimal(0), repr=decimal_repr)
    storage_usd: Decimal = attrs.field(default=Decimal(0), repr=decimal_repr)
    compute_usd: Decimal = attrs.field(default=Decimal(0), repr=decimal_repr)

    @property
    def total_usd(self) -> Decimal:
        """Everything together."""
        return self.llm_usd + self.storage_usd + self.compute_usd

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.llm_usd + other.llm_usd,
            self.storage_usd + other.storage_usd,
            self.compute_usd + other.compute_usd,
        )


@attrs.frozen
class Execution:
    """One run of a pipeline template for a request.

    `template` is a snapshot taken when the execution was created, so later catalogue changes
    never alter a running or resumed execution. `context` holds what stages may bind to besides
    parameters and earlier outputs (the request's title and description, as `request.*`).
    `resources` are the caller's limits (`max_workers`, `timeout_ms`, `cache`); `runs` counts
    how often the execution was started (a retry of a failed execution starts a new run).
    """

    id: str
    request_id: str | None
    client_id: str | None
    template: Template = attrs.field(repr=template_repr)
    parameters: dict[str, Any] = attrs.field(repr=bounded_repr(MAPPING))
    status: ExecutionStatus = attrs.field(repr=enum_repr)
    created_at: datetime = attrs.field(repr=iso_repr)
    updated_at: datetime = attrs.field(repr=iso_repr)
    started_at: datetime | None = attrs.field(default=None, repr=iso_repr)
    finished_at: datetime | None = attrs.field(default=None, repr=iso_repr)
    error: str | None = attrs.field(default=None, repr=bounded_repr(ERROR))
    usage: Usage = attrs.field(factory=Usage, repr=compact)
    cost: Cost = attrs.field(factory=Cost, repr=compact)
    stages_total: int = 0
    stages_done: int = 0
    # Mostly the request's own title and description, which can be long.
    context: dict[str, Any] = attrs.field(factory=dict, repr=bounded_repr(CONTEXT))
    resources: dict[str, Any] = attrs.field(factory=dict, repr=bounded_repr(MAPPING))
    runs: int = 0
    #: The W3C `traceparent` of the span that created the execution (None when that
    #: factory did not trace): each run of it continues that trace (`FactoryConfig.tracing`).
    trace: str | None = attrs.field(default=None, repr=False)

    @property
    def progress(self) -> float:
        """Share of stages finished, 0.0-1.0."""
        return self.stages_done / self.stages_total if self.stages_total else 0.0

    def _repr_html_(self) -> str:
        """Jupyter's rich display: status, progress, cost, usage, times and any error."""
        return _html.execution(self)


@attrs.frozen
class StageRun:
    """The record of one stage of an execution: its current attempt and outcome."""

    execution_id: str
    stage_id: str
    worker: str
    status: StageStatus = attrs.field(repr=enum_repr)
    attempt: int = 0
    handshake_id: str | None = None
    input_ref: StorageRef | None = attrs.field(default=None, repr=ref_repr)
    output_ref: StorageRef | None = attrs.field(default=None, repr=ref_repr)
    summary: dict[str, Any] = attrs.field(factory=dict, repr=bounded_repr(MAPPING))
    usage: Usage = attrs.field(factory=Usage, repr=compact)
    cost: Cost = attrs.field(factory=Cost, repr=compact)
    error: str | None = attrs.field(default=None, repr=bounded_repr(ERROR))
    started_at: datetime | None = attrs.field(default=None, repr=iso_repr)
    finished_at: datetime | None = attrs.field(default=None, repr=iso_repr)

    def _repr_html_(self) -> str:
        """Jupyter's rich display: worker, status, attempt, references, cost and any error."""
        return _html.stage_run(self)


@attrs.frozen
class Checkpoint:
    """What an execution has committed so far: the version and each finished stage's output.

    Written in the same transaction as the acknowledged stage, so resume never sees a stage
    acknowledged without its checkpoint or the other way round.
    """

    execution_id: str
    version: int
    completed: dict[str, StorageRef] = attrs.field(repr=refs_repr)
    created_at: datetime = attrs.field(repr=iso_repr)


@attrs.frozen
class ExecutionEvent:
    """Something that happened in an execution, in order (`seq` counts from 1 per execution).

    Kinds: `execution.started`, `stage.started`, `stage.succeeded`, `stage.failed`,
    `stage.retrying`, `stage.skipped`, `execution.completed`, `execution.failed`, ...
    """

    execution_id: str
    seq: int
    at: datetime = attrs.field(repr=iso_repr)
    kind: str
    stage_id: str | None = None
    data: dict[str, Any] = attrs.field(factory=dict, repr=bounded_repr(MAPPING))

    def _repr_html_(self) -> str:
        """Jupyter's rich display: sequence number, kind, stage, time and data."""
        return _html.event(self)


@attrs.frozen
class ExecutionOwner:
    """Who runs an execution that wants running (the staff's view of the replicas).

    `state` is `running` (a live replica holds its lease), `interrupted` (its replica is
    gone or let the lease run out: another will take it over) or `waiting` (nobody has
    taken it up yet). `owner` names the replica (`host:pid:start:nonce`); `expires_at` is
    when its lease runs out unless renewed.
    """

    execution_id: str
    status: ExecutionStatus
    state: str
    owner: str | None = None
    expires_at: datetime | None = attrs.field(default=None, repr=iso_repr)


@attrs.frozen
class WorkerStatus:
    """One worker endpoint as the orchestrator's registry sees it (the staff's view of the
    workers).

    `state` is `ready` (healthy, with free slots), `busy` (healthy, no free slot: work
    waits or goes elsewhere), `unhealthy` (it answers that it takes no work) or
    `unreachable` (its health check failed: out of rotation for a few seconds, then asked
    again). `local` says whether it runs in the orchestrator's process; slots, capabilities
    and version are what its last health check said (zero and empty when unreachable).
    `last_seen` is when it last answered (a health check or a handshake), `failures` how
    often it could not be reached (health checks and handshakes, since this process
    registered it), the last time at `last_failure`.
    """

    worker: str
    state: str
    local: bool
    slots_total: int = 0
    slots_free: int = 0
    capabilities: tuple[str, ...] = ()
    version: str = ""
    last_seen: datetime | None = None
    failures: int = 0
    last_failure: datetime | None = None
