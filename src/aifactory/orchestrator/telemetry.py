"""What the orchestrator tells a monitoring system as it goes: stage outcomes, retries and
finished executions.

`Telemetry` hears nothing (the default: no cost but a method call); `PrometheusTelemetry`
keeps counters and histograms in a registry of its own (one per factory, no global state),
which the served apps expose at `/metrics`. Labels are of bounded cardinality: template,
worker, stage kind (action) and outcome, never an execution, request or client id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..models import Cost, Execution, Usage
from ..protocol.messages import StageSummary

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["DURATION_BUCKETS", "PrometheusTelemetry", "Telemetry"]

#: Seconds; stages and executions range from milliseconds (in process) to many minutes.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class Telemetry:
    """Hears what the orchestrator reports, and does nothing with it."""

    def stage_succeeded(
        self, worker: str, action: str, duration_s: float, summary: StageSummary, cost: Cost
    ) -> None:
        """A stage committed: its last attempt took `duration_s`; `summary` and `cost` are
        that attempt's."""

    def stage_failed(self, worker: str, action: str, duration_s: float) -> None:
        """A stage failed for good."""

    def stage_retried(self, worker: str, action: str) -> None:
        """A stage's attempt failed and another follows."""

    def execution_finished(self, execution: Execution) -> None:
        """An execution ended (completed, partly or in full, failed or cancelled)."""


@attrs.frozen
class _Succeeded:
    """The metric children one (worker, action) pair's succeeded stages count in."""

    stages: Any
    seconds: Any
    queue: Any
    cpu: Any
    model_calls: Any
    prompt: Any
    completion: Any
    cost: Any
    stored: Any


class PrometheusTelemetry(Telemetry):
    """`Telemetry` as Prometheus counters and histograms, in `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        stage = ("worker", "action")

        def counter(name: str, doc: str, labels: tuple[str, ...] = stage) -> Any:
            return Counter(name, doc, labels, registry=self.registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...] = stage) -> Any:
            return Histogram(name, doc, labels, registry=self.registry, buckets=DURATION_BUCKETS)

        self.stages = counter(
            "aifactory_stages", "Stages finished, by outcome", (*stage, "outcome")
        )
        self.retries = counter("aifactory_stage_retries", "Stage attempts that were retried")
        self.stage_seconds = histogram(
            "aifactory_stage_duration_seconds", "Duration of a stage's last attempt"
        )
        self.queue_seconds = histogram(
            "aifactory_stage_queue_seconds", "Wait for a worker to accept a stage attempt"
        )
        self.cpu_seconds = counter(
            "aifactory_stage_cpu_seconds", "CPU time of committed stage attempts"
        )
        self.model_calls = counter("aifactory_model_calls", "Model calls of committed stages")
        self.tokens = counter("aifactory_tokens", "Model tokens", (*stage, "kind"))
        self.cost = counter("aifactory_cost_usd", "Cost of committed stages, in USD")
        self.stored = counter("aifactory_stored_bytes", "Bytes stored by committed stages")
        self.executions = counter(
            "aifactory_executions", "Executions finished, by outcome", ("template", "outcome")
        )
        self.execution_seconds = histogram(
            "aifactory_execution_duration_seconds",
            "From an execution's creation to its end",
            ("template", "outcome"),
        )
        # The served apps count their HTTP requests here too (`server.metrics`).
        self.http_requests = counter(
            "aifactory_http_requests",
            "HTTP requests answered, by route template and status",
            ("service", "method", "route", "status"),
        )
        self.http_seconds = histogram(
            "aifactory_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ("service", "route"),
        )
        # (worker, action) -> its children; as few as the label values (bounded).
        self._children: dict[tuple[str, str], _Succeeded] = {}

    def _succeeded(self, worker: str, action: str) -> _Succeeded:
        """The children a succeeded stage of (`worker`, `action`) counts in, made once: a
        `labels()` lookup takes a lock, and a stage would make nine."""
        found = self._children.get((worker, action))
        if found is None:
            found = self._children[worker, action] = _Succeeded(
                self.stages.labels(worker, action, "succeeded"),
                self.stage_seconds.labels(worker, action),
                self.queue_seconds.labels(worker, action),
                self.cpu_seconds.labels(worker, action),
                self.model_calls.labels(worker, action),
                self.tokens.labels(worker, action, "prompt"),
                self.tokens.labels(worker, action, "completion"),
                self.cost.labels(worker, action),
                self.stored.labels(worker, action),
            )
        return found

    def stage_succeeded(
        self, worker: str, action: str, duration_s: float, summary: StageSummary, cost: Cost
    ) -> None:
        """Count the stage, its time, usage and cost."""
        usage: Usage = summary.usage
        counts = self._succeeded(worker, action)
        counts.stages.inc()
        counts.seconds.observe(duration_s)
        counts.queue.observe(summary.queue_ms / 1000)
        counts.cpu.inc(summary.cpu_ms / 1000)
        if usage.model_calls:
            counts.model_calls.inc(usage.model_calls)
            counts.prompt.inc(usage.prompt_tokens)
            counts.completion.inc(usage.completion_tokens)
        counts.cost.inc(float(cost.total_usd))
        counts.stored.inc(usage.bytes_stored)

    def stage_failed(self, worker: str, action: str, duration_s: float) -> None:
        """Count the failure and its last attempt's time."""
        self.stages.labels(worker, action, "failed").inc()
        self.stage_seconds.labels(worker, action).observe(duration_s)

    def stage_retried(self, worker: str, action: str) -> None:
        """Count the retry."""
        self.retries.labels(worker, action).inc()

    def execution_finished(self, execution: Execution) -> None:
        """Count the execution by outcome (`partial` for a partial completion)."""
        outcome = execution.status.value
        if outcome == "completed" and execution.error:
            outcome = "partial"
        name = execution.template.name
        self.executions.labels(name, outcome).inc()
        if execution.finished_at is not None:
            seconds = (execution.finished_at - execution.created_at).total_seconds()
            self.execution_seconds.labels(name, outcome).observe(seconds)
