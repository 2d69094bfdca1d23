"""What the orchestrator writes about a running execution, as values the store commits whole
(and the usage facts the store reads back for a report).

A stage's commit is one `ExecutionWrite`: the stage's outcome, the execution's new totals,
the checkpoint, the events and the result-cache entry, and perhaps the first attempt of the
stage it makes ready. The store writes it in one transaction and fences it: an attempt that
is stale, or an execution whose lease has passed to another process, writes nothing and
raises.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from ..models import (
    Checkpoint,
    Cost,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    ModelUsage,
    StageRun,
    StorageRef,
    Usage,
)

__all__ = [
    "CacheEntry",
    "Claim",
    "ExecutionFact",
    "ExecutionWrite",
    "Lease",
    "MetricsFacts",
    "Pruned",
    "SpentBy",
    "StageFact",
    "UsageFacts",
]


@attrs.frozen
class CacheEntry:
    """A stage result remembered under its cache key until `expires_at`."""

    key: str
    worker: str
    output_ref: StorageRef
    summary: dict[str, Any]
    created_at: datetime
    expires_at: datetime


@attrs.frozen
class ExecutionWrite:
    """One transaction's writes about one execution.

    - `started`: new attempts, each fenced: the stored attempt must be older.
    - `finished`: an attempt's outcome, fenced: the stored attempt must be this one, running.
    - `runs`: stage runs replaced without fencing (skips, resets, errors).
    - `execution`: the execution's progress (status, times, error, totals, run count).
    - `totals`: only what a stage changes of the execution (usage, cost, stages done).
    - `checkpoint`: holding only the outputs its version adds.
    - `events`, and a result-cache `cache` entry.
    - `claim`: take the execution's lease first (see `Claim`); the write is then fenced by
      the new token.
    - `lease`: the fencing token of the lease the writer holds on the execution (`None`:
      the writer does not run it under a lease).
    """

    execution_id: str
    started: tuple[StageRun, ...] = ()
    finished: StageRun | None = None
    runs: tuple[StageRun, ...] = ()
    execution: Execution | None = None
    totals: Execution | None = None
    checkpoint: Checkpoint | None = None
    events: tuple[ExecutionEvent, ...] = ()
    cache: CacheEntry | None = None
    lease: int | None = None
    claim: Claim | None = None


@attrs.frozen
class Pruned:
    """What `prune` forgot: rows by kind, and the outside blobs left for the caller."""

    counts: dict[str, int]
    blobs: list[StorageRef]


@attrs.frozen
class Claim:
    """Taking an execution's lease: it passes to `owner` until `expires_at` if its token is
    still `token` (compare-and-set), and the new token is `token + 1`."""

    owner: str
    token: int
    expires_at: datetime


@attrs.frozen
class Lease:
    """Who runs an execution: its owner and lease (`owner` is `None` when nobody does), and
    whether it wants running (`runnable`: asked to run and not finished)."""

    execution_id: str
    status: ExecutionStatus
    runnable: bool
    owner: str | None
    token: int
    expires_at: datetime | None


@attrs.frozen
class SpentBy:
    """What one execution, or one of its stage runs, used: `name` is the template's name (for
    an execution) or the worker's (for a stage run)."""

    execution_id: str
    name: str
    status: str
    usage: Usage
    cost: Cost


@attrs.frozen
class UsageFacts:
    """What the usage report of one client and month is made of (`Store.usage_facts`): the
    executions created in the month, their stage runs, the model calls made outside any
    execution, and what the budget was charged in the month."""

    executions: tuple[SpentBy, ...]
    stage_runs: tuple[SpentBy, ...]
    model_usage: tuple[ModelUsage, ...]
    charged_usd: Decimal


@attrs.frozen
class ExecutionFact:
    """One execution as the factory-wide metrics see it: whose, which template, how it
    ended and when (`request_created_at`: when its request was made, if it has one)."""

    id: str
    client_id: str | None
    template: str
    status: str
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    request_created_at: datetime | None
    usage: Usage
    cost: Cost


@attrs.frozen
class StageFact:
    """One stage run as the factory-wide metrics see it: its worker and action (the stage's
    kind), outcome, attempts, times, usage, cost and its summary (the measured CPU time,
    peak memory and queue wait of its committed attempt)."""

    execution_id: str
    stage_id: str
    worker: str
    action: str
    status: str
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    usage: Usage
    cost: Cost
    summary: dict[str, Any]


@attrs.frozen
class MetricsFacts:
    """What the factory-wide metrics of a time window are made of (`Store.metrics_facts`):
    the executions created in it and their stage runs."""

    executions: tuple[ExecutionFact, ...]
    stage_runs: tuple[StageFact, ...]
