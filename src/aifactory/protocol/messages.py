"""The worker protocol's wire messages: handshake, process, acknowledge."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

import attrs

from ..models.execution import Cost, Usage
from ..models.storage_ref import StorageRef

__all__ = [
    "AcknowledgeByDigest",
    "AcknowledgeReply",
    "AcknowledgeRequest",
    "Binding",
    "HandshakeReply",
    "HandshakeRequest",
    "ProcessReply",
    "ProcessRequest",
    "ResourceEstimate",
    "StageInput",
    "StageSummary",
    "WorkerHealth",
]


@attrs.frozen
class ResourceEstimate:
    """What a worker expects a stage to need, given at handshake."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_ms: int = 0
    memory_mb: int = 64
    cost_usd: Decimal = Decimal(0)


@attrs.frozen
class HandshakeRequest:
    """May I give you this work? Sent before any processing.

    `input_ref` points at the stage input document (parameters and bindings to earlier
    outputs); `idempotency_key` is stable for the same execution, stage and input.
    """

    execution_id: str
    stage_id: str
    attempt: int
    worker: str
    action: str
    input_ref: StorageRef
    idempotency_key: str
    requirements: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class HandshakeReply:
    """The worker's answer: accepted with an estimate, or rejected with a reason.

    `retryable` is false when the input itself was refused (another attempt would be too),
    true when the worker was only busy.
    """

    accepted: bool
    handshake_id: str
    worker: str
    estimate: ResourceEstimate = attrs.field(factory=ResourceEstimate)
    reason: str | None = None
    retryable: bool = True
    capabilities: tuple[str, ...] = ()


@attrs.frozen
class ProcessRequest:
    """Do the work you accepted.

    `data_ref` names the stage input when it is stored (`kv://`, `r2://`); an inline input
    already travelled with the handshake and is not sent twice. `budget_usd` is the most
    the attempt may spend on models (`None`: unbounded); the host bounds each model call
    by what is left of it (`aifactory.llm.metering.completion_cap`).
    """

    execution_id: str
    stage_id: str
    attempt: int
    handshake_id: str
    data_ref: StorageRef | None = None
    budget_usd: Decimal | None = None


@attrs.frozen
class StageSummary:
    """What the worker reports about its output.

    `method` names how the output was made (`"llm:<model>"` or a documented non-LLM method such
    as `"non-llm:structure-template"`); `continue_pipeline=False` stops the pipeline cleanly.

    The worker host adds what it measured of the attempt: `cpu_ms`, the CPU time the
    worker's own code used (each step of its coroutine timed on its thread, so what other
    stages did meanwhile is not counted), and `peak_rss_kb`, the worker process's peak
    resident memory when the attempt ended. The orchestrator adds `queue_ms`, how long the
    attempt waited for a worker to accept it (schedule-to-start).
    """

    method: str
    usage: Usage = attrs.field(factory=Usage)
    cost: Cost = attrs.field(factory=Cost)
    quality_score: float | None = None
    continue_pipeline: bool = True
    notes: tuple[str, ...] = ()
    cpu_ms: float = 0.0
    peak_rss_kb: int = 0
    queue_ms: float = 0.0


@attrs.frozen
class ProcessReply:
    """The worker's output, by reference, and its summary."""

    handshake_id: str
    attempt: int
    output_ref: StorageRef
    summary: StageSummary


@attrs.frozen
class AcknowledgeRequest:
    """I have your output; the stage is committed (or failed)."""

    execution_id: str
    stage_id: str
    attempt: int
    handshake_id: str
    status: str
    output_ref: StorageRef | None = None


@attrs.frozen
class AcknowledgeByDigest:
    """An `AcknowledgeRequest` as it crosses HTTP: the output named by its sha256 alone.

    The worker service remembers the output it reported for each handshake and checks the
    digest against it, so neither a stored output's reference nor an inline output's bytes
    travel back to the worker that produced them.
    """

    execution_id: str
    stage_id: str
    attempt: int
    handshake_id: str
    status: str
    output_sha256: str | None = None

    @classmethod
    def of(cls, request: AcknowledgeRequest) -> AcknowledgeByDigest:
        """The digest form of `request`."""
        output = request.output_ref
        return cls(
            request.execution_id,
            request.stage_id,
            request.attempt,
            request.handshake_id,
            request.status,
            None if output is None else output.sha256,
        )

    def with_output(self, output_ref: StorageRef | None) -> AcknowledgeRequest:
        """The `AcknowledgeRequest` this stands for, given the output it names."""
        return AcknowledgeRequest(
            self.execution_id,
            self.stage_id,
            self.attempt,
            self.handshake_id,
            self.status,
            output_ref,
        )


@attrs.frozen
class AcknowledgeReply:
    """The worker's confirmation; `duplicate` when this acknowledge was seen before.

    To an acknowledge of an attempt the caller gave up on (status `cancelled`: it timed out
    or was cancelled before its reply came), `usage` and `cost` say what the attempt spent
    on models before it stopped, if anything: billed all the same.
    """

    handshake_id: str
    committed: bool
    duplicate: bool = False
    usage: Usage | None = None
    cost: Cost | None = None


@attrs.frozen
class WorkerHealth:
    """A worker's `/health`: whether it takes work and how many slots are free."""

    worker: str
    healthy: bool
    slots_total: int
    slots_free: int
    capabilities: tuple[str, ...] = ()
    cacheable: bool = True
    version: str = "1"


@attrs.frozen
class Binding:
    """An input bound to an earlier stage's output (`ref` + dotted `path`) or a literal value."""

    ref: StorageRef | None = None
    path: str = ""
    value: Any = None


@attrs.frozen
class StageInput:
    """The document a stage's `input_ref` points at: action, parameters and input bindings."""

    #: The document's keys, as the orchestrator writes them.
    KEYS: ClassVar[frozenset[str]] = frozenset({"action", "bindings", "parameters"})

    action: str
    parameters: dict[str, Any]
    bindings: dict[str, Binding]
