"""A pipeline run in its own process, killed with SIGKILL at a chosen point; see test_crash.py.

`python -m tests.orchestrator.crash_child HOME COUNTERS OUT [STAGE:POINT]` runs (or resumes)
execution `exec_000001` of a three-stage pipeline with real workers on SQLite and local
storage under HOME. Each worker call appends `stage attempt` to COUNTERS (fsync'd, so the
record survives the kill); the deliverable's bytes go to OUT. POINT is one of
`before_process`, `after_process`, `during_checkpoint`, `after_ack`.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from aifactory import SequentialIds, SystemClock
from aifactory.models import StageSpec, Template, Tier
from aifactory.orchestrator import ExecutionReport, Orchestrator, WorkerRegistry
from aifactory.protocol import (
    AcknowledgeReply,
    AcknowledgeRequest,
    ProcessReply,
    ProcessRequest,
)
from aifactory.state import PostgresStore, SQLiteStore
from aifactory.state._threaded import ThreadedStore
from aifactory.storage import BlobStore, StorageConfig
from aifactory.transports import InProcessWorkerTransport
from aifactory.workers import ContentGranulator, ReportBuilder, Worker, WorkerContext, WorkerHost
from aifactory.workers.base import ProgressCallback

TEMPLATE = Template(
    name="crash",
    display_name="Crash test",
    description="",
    category="test",
    tiers=tuple(Tier),
    stages=(
        StageSpec(
            id="outline",
            worker="content_granulator",
            action="granulate",
            input_mapping={"topic": "params.topic"},
            parameters={"structure_type": "course", "granularity": 3},
        ),
        StageSpec(
            id="summary",
            worker="report_builder",
            action="build_report",
            input_mapping={"structure": "outline.output", "topic": "params.topic"},
            parameters={"include_outline": False},
        ),
        StageSpec(
            id="report",
            worker="report_builder",
            action="build_report",
            depends_on=("summary",),
            input_mapping={"structure": "outline.output", "topic": "params.topic"},
            deliverable=True,
        ),
    ),
)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Counting(Worker):
    """Wraps a worker; records each call in the counters file before doing the work."""

    def __init__(self, inner: Worker, counters: Path) -> None:
        self.inner = inner
        self.info = inner.info  # type: ignore[misc]
        self.defaults = inner.defaults  # type: ignore[misc]
        self.counters = counters

    def check_input(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> None:
        self.inner.check_input(action, inputs, params)

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> Any:
        self.record(ctx)
        return await self.inner.process(action, inputs, params, ctx)

    def record(self, ctx: WorkerContext) -> None:
        """Append the call's line to the counters file, durably."""
        with self.counters.open("a") as f:
            f.write(self.line(ctx) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def line(self, ctx: WorkerContext) -> str:
        """What a call records: `STAGE ATTEMPT`."""
        return f"{ctx.stage_id} {ctx.attempt}"


class Crashing(InProcessWorkerTransport):
    """An in-process worker transport that kills the process at the chosen point."""

    def __init__(self, host: WorkerHost, stage: str, point: str) -> None:
        super().__init__(host)
        self.stage, self.point = stage, point

    async def process(
        self, request: ProcessRequest, on_progress: ProgressCallback | None = None
    ) -> ProcessReply:
        if request.stage_id == self.stage and self.point == "before_process":
            die()
        reply = await super().process(request, on_progress)
        if request.stage_id == self.stage and self.point == "after_process":
            die()
        return reply

    async def acknowledge(self, request: AcknowledgeRequest) -> AcknowledgeReply:
        reply = await super().acknowledge(request)
        if request.stage_id == self.stage and self.point == "after_ack":
            die()
        return reply


def crash_in_checkpoint(store: ThreadedStore, stage: str) -> None:
    """Make the store die inside the transaction that writes `stage`'s checkpoint."""
    database = store.writer.database
    insert = database._insert_checkpoint

    def _insert_checkpoint(checkpoint: Any) -> None:
        insert(checkpoint)
        if stage in checkpoint.completed:
            die()  # the stage row is updated, the checkpoint row written, nothing committed

    database._insert_checkpoint = _insert_checkpoint  # type: ignore[method-assign]


class FileSink:
    def __init__(self, blobs: BlobStore, out: Path) -> None:
        self.blobs, self.out = blobs, out

    async def execution_finished(self, report: ExecutionReport) -> None:
        [artifact] = report.artifacts
        self.out.write_bytes(self.blobs.get(artifact.ref))


async def main(home: Path, counters: Path, out: Path, crash: str | None) -> None:
    stage, _, point = (crash or ":").partition(":")
    # The state lives in the home's SQLite file, or in PostgreSQL at $CRASH_STATE_URL.
    url = os.environ.get("CRASH_STATE_URL")
    store = SQLiteStore(home / "state.sqlite3") if url is None else PostgresStore(url)
    if point == "during_checkpoint":
        crash_in_checkpoint(store, stage)
    clock, ids = SystemClock(), SequentialIds()
    blobs = BlobStore(StorageConfig.local(home / "blobs"), clock)
    registry = WorkerRegistry(
        Crashing(WorkerHost(Counting(w, counters), blobs, clock, ids), stage, point)
        for w in (ContentGranulator(), ReportBuilder())
    )
    orchestrator = Orchestrator(store, blobs, registry, FileSink(blobs, out), clock=clock, ids=ids)
    if not await store.list_executions():
        await orchestrator.create(
            TEMPLATE, {"topic": "Crash-safe pipelines"}, resources={"cache": False}
        )
    [execution] = await store.list_executions()
    final = await orchestrator.run(execution.id)
    print(final.status.value)


if __name__ == "__main__":
    crash_at = sys.argv[4] if len(sys.argv) > 4 else None
    anyio.run(main, Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), crash_at)
