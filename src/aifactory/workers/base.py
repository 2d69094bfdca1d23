"""The `Worker` base class: what a worker declares and the one method it implements.

A worker knows nothing of accounts, executions or the protocol. It receives its resolved
inputs and merged parameters, may store artifacts through its `WorkerContext`, reports
progress, and returns a `WorkerResult` (a JSON-compatible output plus a `StageSummary`). The
`WorkerHost` wraps it in the handshake → process → acknowledge protocol.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import attrs

from .._clock import Clock
from .._exceptions import BadInputError
from ..models.storage_ref import StorageRef
from ..protocol.messages import ResourceEstimate, StageSummary

if TYPE_CHECKING:
    from ..llm import LLM

__all__ = [
    "JobWorker",
    "ModelWorker",
    "ProgressCallback",
    "Worker",
    "WorkerContext",
    "WorkerInfo",
    "WorkerResult",
    "check_worker_name",
    "no_progress",
]

_WORKER_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


def check_worker_name(name: str) -> str:
    """Return `name` if it is a canonical worker name (`snake_case`).

    The original system spelled names two ways (`content-granulator`, `content_granulator`);
    here there is one spelling, and the other is refused with a hint. Raises `BadInputError`.
    """
    if not _WORKER_NAME.fullmatch(name):
        hint = name.replace("-", "_").lower()
        raise BadInputError(
            f"worker names are snake_case: {name!r} is not (did you mean {hint!r}?)",
            details={"worker": name, "suggestion": hint},
        )
    return name


@attrs.frozen
class WorkerInfo:
    """What a worker declares: its actions, structure types, slots and resource needs.

    `cacheable` says whether the same input always deserves the same output for a while (a
    feed fetcher's output goes stale, so it says no); `version` is part of the cache key.
    """

    name: str
    description: str
    actions: tuple[str, ...]
    structure_types: tuple[str, ...] = ()
    slots: int = 4
    memory_mb: int = 128
    version: str = "1"
    cacheable: bool = True


@attrs.frozen
class WorkerResult:
    """A worker's output (JSON-compatible) and its summary."""

    output: dict[str, Any]
    summary: StageSummary


ProgressCallback = Callable[[float, str], Awaitable[None]]
ArtifactWriter = Callable[[bytes, str, str], StorageRef]


async def no_progress(percent: float, message: str) -> None:
    """A progress callback that ignores progress."""
    """A progress callback that ignores progress."""
    return None


@attrs.frozen
class WorkerContext:
    """What a worker may use while processing one stage attempt.

    `idempotency_key` is the same for every attempt of the same execution, stage and input:
    workers with side effects outside aifactory use it to do them once.
    """

    execution_id: str
    stage_id: str
    attempt: int
    idempotency_key: str
    clock: Clock
    write_artifact: ArtifactWriter
    report_progress: ProgressCallback = no_progress

    async def progress(self, percent: float, message: str = "") -> None:
        """Report progress (0-100) of this stage."""
        await self.report_progress(max(0.0, min(100.0, percent)), message)

    def store_artifact(self, data: bytes, *, name: str, media_type: str) -> StorageRef:
        """Store a product of this stage (a report, an export) and return its reference."""
        return self.write_artifact(data, name, media_type)


class Worker(abc.ABC):
    """Base of every worker. Subclasses set `info` and `defaults` and implement `process`."""

    info: ClassVar[WorkerInfo]
    defaults: ClassVar[Mapping[str, Any]] = {}

    @property
    def name(self) -> str:
        """The worker's canonical name."""
        return self.info.name

    def check_input(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> None:
        """Refuse work this worker cannot do (raise `BadInputError`); called at handshake."""
        if action not in self.info.actions:
            raise BadInputError(
                f"worker {self.name} has no action {action!r}",
                details={"action": action, "actions": list(self.info.actions)},
            )

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        """What the stage will need; the default is a small CPU-only job."""
        return ResourceEstimate(duration_ms=50, memory_mb=self.info.memory_mb)

    @abc.abstractmethod
    async def process(
        self,
        action: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        ctx: WorkerContext,
    ) -> WorkerResult:
        """Do the work. Raise `BadInputError` for input that can never succeed."""


class _Job(Protocol):
    @classmethod
    def from_stage(cls, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> Any: ...


J = TypeVar("J")


class JobWorker(Worker, Generic[J]):
    """A worker that checks its input by building one job value:
    `job_type.from_stage(inputs, params)` raises `BadInputError` for anything unusable, at
    handshake and again before processing.
    """

    job_type: type[_Job]

    def job(self, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> J:
        """The checked job for `inputs` and `params` merged over `defaults`.

        Raises `BadInputError`.
        """
        job: J = self.job_type.from_stage(inputs, {**self.defaults, **params})
        return job

    def check_input(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> None:
        """Refuse an unknown action or unusable inputs/params. Raises `BadInputError`."""
        super().check_input(action, inputs, params)
        self.job(inputs, params)

    def checked_job(self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> J:
        """`check_input`, returning the job (what `process` starts with)."""
        Worker.check_input(self, action, inputs, params)
        return self.job(inputs, params)


class ModelWorker(JobWorker[J]):
    """A `JobWorker` that may use a language model (`llm=None`: its non-LLM method)."""

    def __init__(self, llm: LLM | None = None) -> None:
        self.llm = llm
