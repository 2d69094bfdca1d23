"""The benchmark's pipeline: five no-op stages, each adding a ~1 KB string to a dict.

The same work is wired into every system measured: plain function calls, aifactory's
embedded orchestrator (no-op `Worker`s behind in-process transports) and, when the `bench`
extra is installed, a LangGraph `StateGraph` (imported only when asked for).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypedDict

from aifactory import FactoryConfig, RandomIds, SystemClock
from aifactory._tracing import NO_TRACING, OpenTelemetryTracer, Tracer
from aifactory.config import EMBEDDED_STAGE_INLINE_BYTES
from aifactory.models import StageSpec, Template, Tier
from aifactory.orchestrator import ExecutionReport, Orchestrator, WorkerRegistry
from aifactory.orchestrator.telemetry import PrometheusTelemetry, Telemetry
from aifactory.protocol.messages import StageSummary
from aifactory.state import PostgresStore, SQLiteStore
from aifactory.storage import BlobStore
from aifactory.transports import InProcessWorkerTransport
from aifactory.workers import Worker, WorkerContext, WorkerHost, WorkerInfo, WorkerResult

__all__ = [
    "PAYLOAD",
    "STAGES",
    "PipelineState",
    "add_payload",
    "embedded_orchestrator",
    "langgraph_pipeline",
    "noop_template",
    "plain_pipeline",
]

STAGES = 5
#: What each stage adds to the pipeline's dict (1,000 ASCII characters).
PAYLOAD = ("0123456789abcdef" * 63)[:1000]


def add_payload(data: Mapping[str, Any], stage: int) -> dict[str, Any]:
    """The work of one stage: a copy of `data` with this stage's payload added."""
    return {**data, f"s{stage}": PAYLOAD}


def plain_pipeline(data: Mapping[str, Any]) -> dict[str, Any]:
    """The baseline: the five stages as plain function calls."""
    out = dict(data)
    for stage in range(1, STAGES + 1):
        out = add_payload(out, stage)
    return out


# -- aifactory --------------------------------------------------------------------------------


def _noop_worker(stage: int) -> Worker:
    class NoopWorker(Worker):
        info: ClassVar[WorkerInfo] = WorkerInfo(
            name=f"noop_{stage}",
            description=f"benchmark stage {stage}: adds a 1 KB string",
            actions=("noop",),
            slots=1000,  # never the bottleneck, even at high concurrency
        )

        async def process(
            self,
            action: str,
            inputs: Mapping[str, Any],
            params: Mapping[str, Any],
            ctx: WorkerContext,
        ) -> WorkerResult:
            return WorkerResult(
                output=add_payload(inputs["data"], stage), summary=StageSummary(method="noop")
            )

    return NoopWorker()


def noop_template() -> Template:
    """A linear template of the five no-op stages; the first reads `params.data`."""
    stages = tuple(
        StageSpec(
            id=f"s{i}",
            worker=f"noop_{i}",
            action="noop",
            input_mapping={"data": "params.data" if i == 1 else f"s{i - 1}.output"},
        )
        for i in range(1, STAGES + 1)
    )
    return Template(
        name="bench_noop",
        display_name="Benchmark: five no-op stages",
        description="Measures the orchestrator's per-stage overhead.",
        category="benchmark",
        tiers=tuple(Tier),
        stages=stages,
    )


class _NullSink:
    async def execution_finished(self, report: ExecutionReport) -> None:
        return None


@contextlib.contextmanager
def embedded_orchestrator(
    folder: Path,
    *,
    stage_inline_max_bytes: int | None = EMBEDDED_STAGE_INLINE_BYTES,
    max_workers: int = 4,
    state: str | None = None,
    metrics: bool = True,
    tracing: bool = False,
) -> Iterator[Orchestrator]:
    """An orchestrator with durable state and blobs under `folder` and in-process workers.

    Storage is what the embedded factory builds for home `folder` (`FactoryConfig`): stage
    payloads inline up to `stage_inline_max_bytes` (64 KiB), or with `None` the seed's wire
    placement (inline under 1 KiB, larger payloads as fsync'd KV files). With `metrics` (the
    embedded factory's default) the orchestrator keeps its Prometheus counters and histograms.
    With `tracing` it makes OpenTelemetry spans (the SDK's, batched to an exporter that drops
    them: the cost of making and ending spans, not of any collector).
    """
    clock, ids = SystemClock(), RandomIds()
    config = FactoryConfig(home=folder, stage_inline_max_bytes=stage_inline_max_bytes)
    store = SQLiteStore(config.database) if state is None else PostgresStore(state)
    blobs = BlobStore(config.storage_config(), clock)
    registry = WorkerRegistry(
        InProcessWorkerTransport(WorkerHost(_noop_worker(i), blobs, clock, ids))
        for i in range(1, STAGES + 1)
    )
    try:
        yield Orchestrator(
            store,
            blobs,
            registry,
            _NullSink(),
            clock=clock,
            ids=ids,
            max_workers=max_workers,
            telemetry=PrometheusTelemetry() if metrics else Telemetry(),
            tracer=_tracer() if tracing else NO_TRACING,
        )
    finally:
        store.close()  # no event loop here: the store closes its lanes synchronously


def _tracer() -> Tracer:
    """Spans of the OpenTelemetry SDK, batched to an exporter that drops them."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    return OpenTelemetryTracer(provider)


# -- LangGraph ----------------------------------------------------------------------------------


class PipelineState(TypedDict):
    """LangGraph's state: the dict the stages pass on, in one channel."""

    data: dict[str, Any]


def langgraph_pipeline(checkpointer: Any, *, asynchronous: bool) -> Any:
    """A compiled 5-node LangGraph `StateGraph` doing the pipeline's work.

    `asynchronous` makes the nodes coroutines, so `ainvoke` runs them on the event loop
    instead of handing each to a thread. Raises `ImportError` without the `bench` extra.
    """
    from langgraph.graph import END, START, StateGraph

    graph: Any = StateGraph(PipelineState)
    previous = START
    for stage in range(1, STAGES + 1):
        name = f"s{stage}"
        graph.add_node(name, _async_node(stage) if asynchronous else _sync_node(stage))
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph.compile(checkpointer=checkpointer)


def _sync_node(stage: int) -> Any:
    def node(state: PipelineState) -> dict[str, Any]:
        return {"data": add_payload(state["data"], stage)}

    node.__name__ = f"s{stage}"
    return node


def _async_node(stage: int) -> Any:
    async def node(state: PipelineState) -> dict[str, Any]:
        return {"data": add_payload(state["data"], stage)}

    node.__name__ = f"s{stage}"
    return node
