"""Upkeep of stored executions, outside any run: reopening one to retry it, and forgetting
what long-finished ones no longer need (retention)."""

from __future__ import annotations

from datetime import datetime

import attrs

from .._clock import Clock
from .._exceptions import AIFactoryError, ConflictError
from ..models import Execution, ExecutionStatus, StageStatus
from ..state import Store
from ..storage import BlobStore

__all__ = ["prune", "reopen"]


async def reopen(store: Store, clock: Clock, execution_id: str) -> Execution:
    """Make a failed or cancelled execution runnable again, keeping committed stages.

    Stages that failed, were skipped or cancelled go back to pending (their attempt
    numbers keep counting). Raises `ConflictError` for any other status.
    """
    execution = await store.get_execution(execution_id)
    if execution.status not in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED):
        raise ConflictError(
            f"only failed or cancelled executions can be retried; this one is "
            f"{execution.status.value}",
            details={"status": execution.status.value},
        )
    runs = await store.get_stage_runs(execution_id)
    reset = [
        attrs.evolve(r, status=StageStatus.PENDING, error=None)
        for r in runs
        if r.status is not StageStatus.SUCCEEDED
    ]
    reopened = attrs.evolve(
        execution,
        status=ExecutionStatus.PENDING,
        error=None,
        finished_at=None,
        stages_done=len(runs) - len(reset),
        updated_at=clock.now(),
    )
    await store.reopen(reopened, reset)
    return reopened


async def prune(
    store: Store, blobs: BlobStore, clock: Clock, finished_before: datetime
) -> dict[str, int]:
    """Forget checkpoints and events of executions that finished before `finished_before`
    (never of running or pending ones), the stage inputs and outputs of those that
    completed (deliverables stay; failed and cancelled ones keep theirs for a retry), and
    expired cache entries. Returns how many of each went: rows by table, `stage_data`
    (stage runs cleared), `payloads`, `blobs` (files or objects deleted) and, if some
    could not be deleted, `blobs_not_deleted`."""
    pruned = await store.prune(finished_before, clock.now())
    counts = dict(pruned.counts)
    counts["blobs"] = 0
    for ref in pruned.blobs:
        try:
            await blobs.adelete(ref)
        except AIFactoryError:
            # The references are gone from the store already: what is left is an
            # orphan file or object, which the count reports to whoever pruned.
            counts["blobs_not_deleted"] = counts.get("blobs_not_deleted", 0) + 1
        else:
            counts["blobs"] += 1
    return counts
