"""`WorkerHost`: one worker behind the handshake → process → acknowledge protocol.

The host owns what the protocol needs and the worker should not care about: it resolves the
stage input document and its bindings from storage, enforces the handshake state machine
(nothing runs before acceptance, stale attempts are refused, a duplicate acknowledge returns
the stored result), limits concurrent stages to the worker's slots, and stores the output by
reference. The same host serves an in-process transport or an HTTP app.
"""

from __future__ import annotations

import json
import sys
import time
from collections import OrderedDict
from collections.abc import Coroutine, Generator, Mapping
from typing import Any, Generic, TypeVar

import anyio
import attrs

from .._clock import Clock, IdFactory
from .._exceptions import AIFactoryError, BadInputError, NotFoundError, StageFailedError
from ..llm.metering import Meter, metering, spent
from ..models.enums import StorageScheme
from ..models.execution import Cost, Usage
from ..models.storage_ref import StorageRef
from ..protocol.codec import dumps, stage_input
from ..protocol.handshake import HandshakeState, StageHandshake
from ..protocol.messages import (
    AcknowledgeReply,
    AcknowledgeRequest,
    HandshakeReply,
    HandshakeRequest,
    ProcessReply,
    ProcessRequest,
    StageSummary,
    WorkerHealth,
)
from ..storage import BlobStore
from .base import ProgressCallback, Worker, WorkerContext, no_progress

__all__ = [
    "ARTIFACT_NAMESPACE",
    "STAGE_NAMESPACE",
    "CpuTimed",
    "WorkerHost",
    "extract_path",
    "peak_rss_kb",
]

STAGE_NAMESPACE = "stages"
ARTIFACT_NAMESPACE = "artifacts"
_REMEMBERED = 10_000  # finished handshakes kept for duplicate acknowledges
#: How long an acknowledge of a cancelled attempt waits for the attempt to stop (its
#: caller's disconnect cancels it), to say what it spent.
CUT_SHORT_WAIT_S = 2.0
_T = TypeVar("_T")

try:
    import resource
except ImportError:  # pragma: no cover - not a POSIX system: no peak memory figure
    resource = None  # type: ignore[assignment]

# ru_maxrss is in KiB on Linux, in bytes on macOS.
_RSS_DIVISOR = 1024 if sys.platform == "darwin" else 1


def peak_rss_kb() -> int:
    """This process's peak resident memory so far, in KiB (0 where it cannot be known)."""
    if resource is None:  # pragma: no cover
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) // _RSS_DIVISOR


class CpuTimed(Generic[_T]):
    """Awaits a coroutine and sums the CPU time its steps use (`cpu_s`).

    Each step, from a resumption to the next suspension, is timed with `time.thread_time`
    on the thread it runs on, so what other tasks of the event loop do while the coroutine
    waits is not counted, and the cost is two clock reads per step. Work the coroutine
    hands to other threads is not counted either.
    """

    __slots__ = ("_coro", "cpu_s")

    def __init__(self, coro: Coroutine[Any, Any, _T]) -> None:
        self._coro = coro
        self.cpu_s = 0.0

    def __await__(self) -> Generator[Any, Any, _T]:
        coro, clock = self._coro, time.thread_time
        value: Any = None
        error: BaseException | None = None
        while True:
            began = clock()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            finally:
                # Counted however the step ended: the time was used all the same.
                self.cpu_s += clock() - began
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in (a cancellation): passed on inside
                value, error = None, exc


@attrs.frozen
class _Accepted:
    request: HandshakeRequest
    inputs: dict[str, Any]
    parameters: dict[str, Any]


def extract_path(document: Any, path: str) -> Any:
    """The value at dotted `path` in a JSON document (`""` is the whole document).

    Raises `BadInputError` if a step of the path does not exist.
    """
    value = document
    for step in path.split(".") if path else ():
        if isinstance(value, Mapping) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            raise BadInputError(f"input path {path!r} does not exist", details={"path": path})
    return value


class WorkerHost:
    """Serves one `Worker` through the protocol; storage is shared with the orchestrator."""

    def __init__(self, worker: Worker, blobs: BlobStore, clock: Clock, ids: IdFactory) -> None:
        self.worker = worker
        self._blobs = blobs
        self._clock = clock
        self._ids = ids
        self._busy = 0
        # (execution, stage) -> protocol state; handshake id -> what was accepted.
        self._stages: OrderedDict[tuple[str, str], StageHandshake] = OrderedDict()
        self._accepted: OrderedDict[str, _Accepted] = OrderedDict()
        # Attempts processing now; who waits for one to stop; what attempts that ended
        # without a reply spent on models (until their acknowledge asks).
        self._running: set[str] = set()
        self._stopped: dict[str, anyio.Event] = {}
        self._cut_short: OrderedDict[str, Meter] = OrderedDict()

    @property
    def name(self) -> str:
        """The hosted worker's name."""
        return self.worker.name

    def health(self) -> WorkerHealth:
        """Whether the worker takes work, and its free slots."""
        info = self.worker.info
        return WorkerHealth(
            self.name,
            True,
            info.slots,
            max(0, info.slots - self._busy),
            info.actions,
            info.cacheable,
            info.version,
        )

    async def _load_json(self, ref: StorageRef) -> Any:
        try:
            return json.loads(await self._blobs.aget(ref))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise BadInputError(
                f"{ref.uri or 'inline data'} is not JSON (or nested too deeply)"
            ) from exc

    async def _resolve(self, request: HandshakeRequest) -> tuple[dict[str, Any], dict[str, Any]]:
        doc = stage_input(await self._load_json(request.input_ref))
        loaded: dict[str, Any] = {}
        inputs: dict[str, Any] = {}
        for name, binding in doc.bindings.items():
            if binding.ref is None:
                inputs[name] = binding.value
                continue
            key = binding.ref.uri if binding.ref.data is None else binding.ref.sha256
            if key not in loaded:
                loaded[key] = await self._load_json(binding.ref)
            inputs[name] = extract_path(loaded[key], binding.path)
        # The first layer of the merge: the worker's defaults, under what the stage was given.
        params = {
            **self.worker.defaults,
            **{k: v for k, v in doc.parameters.items() if v is not None},
        }
        return inputs, params

    def _remember(self, key: tuple[str, str], state: StageHandshake) -> None:
        self._stages[key] = state
        self._stages.move_to_end(key)
        while len(self._stages) > _REMEMBERED:
            self._stages.popitem(last=False)

    async def handshake(self, request: HandshakeRequest) -> HandshakeReply:
        """Accept or reject a stage attempt, with an estimate.

        Rejects (without raising) when all slots are busy or the input is unsupported.
        Raises `StaleAttemptError` for an attempt older than one already seen.
        """
        key = (request.execution_id, request.stage_id)
        state = self._stages.get(key, StageHandshake()).offer(request.attempt)
        handshake_id = self._ids.new("hs")
        capabilities = self.worker.info.actions
        if self._busy >= self.worker.info.slots:
            # Being busy is no answer about the work itself: the state is left as it was,
            # so the same attempt may be offered again when a slot frees up.
            return HandshakeReply(
                False, handshake_id, self.name, reason="over capacity", capabilities=capabilities
            )
        try:
            inputs, params = await self._resolve(request)
            self.worker.check_input(request.action, inputs, params)
            estimate = self.worker.estimate(request.action, inputs, params)
        except BadInputError as exc:
            self._remember(key, state.reject(request.attempt, exc.message))
            return HandshakeReply(
                False,
                handshake_id,
                self.name,
                reason=exc.message,
                retryable=False,
                capabilities=capabilities,
            )
        self._remember(key, state.accept(request.attempt))
        self._accepted[handshake_id] = _Accepted(request, inputs, params)
        while len(self._accepted) > _REMEMBERED:
            self._accepted.popitem(last=False)
        return HandshakeReply(
            True, handshake_id, self.name, estimate=estimate, capabilities=capabilities
        )

    async def process(
        self, request: ProcessRequest, on_progress: ProgressCallback | None = None
    ) -> ProcessReply:
        """Run the accepted attempt and store its output by reference.

        Raises `NotFoundError` for an unknown handshake, `StaleAttemptError`/`ConflictError`
        out of protocol order, `BadInputError` for input the worker cannot use, and
        `StageFailedError` for anything else that went wrong inside the worker.
        """
        accepted = self._accepted.get(request.handshake_id)
        if accepted is None or accepted.request.attempt != request.attempt:
            raise NotFoundError(f"no accepted handshake {request.handshake_id!r}")
        hs = accepted.request
        key = (hs.execution_id, hs.stage_id)
        self._remember(key, self._stages.get(key, StageHandshake()).start(request.attempt))
        self._busy += 1
        stored = 0
        started = time.perf_counter()

        def write_artifact(data: bytes, name: str, media_type: str) -> StorageRef:
            nonlocal stored
            stored += len(data)
            return self._blobs.put(
                data,
                namespace=ARTIFACT_NAMESPACE,
                key=f"{hs.execution_id}/{hs.stage_id}/{name}",
                media_type=media_type,
            )

        ctx = WorkerContext(
            hs.execution_id,
            hs.stage_id,
            hs.attempt,
            hs.idempotency_key,
            self._clock,
            write_artifact,
            on_progress or no_progress,
        )
        meter = Meter(limit_usd=request.budget_usd)
        timed = CpuTimed(self.worker.process(hs.action, accepted.inputs, accepted.parameters, ctx))
        self._running.add(request.handshake_id)
        try:
            with metering(meter):
                result = await timed
            body = dumps(result.output)
            output_ref = await self._blobs.aput(
                body,
                namespace=STAGE_NAMESPACE,
                key=f"{hs.execution_id}/{hs.stage_id}/output-{hs.attempt}.json",
                media_type="application/json",
            )
        except AIFactoryError as exc:
            self._fail(key, request.attempt, exc.message)
            exc.details.update(spent(meter))  # the models were billed all the same
            raise
        except Exception as exc:
            self._fail(key, request.attempt, repr(exc))
            raise StageFailedError(
                f"worker {self.name} failed: {exc!r}",
                details={"stage_id": hs.stage_id, **spent(meter)},
            ) from exc
        except BaseException:
            # Cancelled: the caller gave up on the reply (over HTTP, it disconnected). What
            # the models billed is kept for the acknowledge that asks.
            if meter.calls:
                self._cut_short[request.handshake_id] = meter
                while len(self._cut_short) > _REMEMBERED:
                    self._cut_short.popitem(last=False)
            raise
        finally:
            self._busy -= 1
            self._running.discard(request.handshake_id)
            stopped = self._stopped.pop(request.handshake_id, None)
            if stopped is not None:
                stopped.set()
        # Billed by the base (wire) placement: a payload the embedded factory keeps inline
        # in its state database costs what it would cost as a KV entry.
        if output_ref.data is None or self._billed_as_stored(len(body)):
            stored += len(body)
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        summary = _with_usage(
            result.summary,
            Usage(bytes_stored=stored, compute_ms=elapsed_ms),
            meter,
            round(timed.cpu_s * 1000, 3),
        )
        self._remember(key, self._stages[key].finish(request.attempt, output_ref))
        return ProcessReply(request.handshake_id, request.attempt, output_ref, summary)

    def _billed_as_stored(self, size: int) -> bool:
        return self._blobs.config.placement.scheme_for(size) is not StorageScheme.INLINE

    def _fail(self, key: tuple[str, str], attempt: int, reason: str) -> None:
        state = self._stages.get(key)
        if state is not None and state.state is HandshakeState.PROCESSING:
            self._remember(key, state.fail(attempt, reason))

    async def acknowledge(self, request: AcknowledgeRequest) -> AcknowledgeReply:
        """Close the attempt: commit on `completed` (idempotent), forget it otherwise. For
        one the caller gave up on, say what it spent on models (waiting up to
        `CUT_SHORT_WAIT_S` for it to stop)."""
        key = (request.execution_id, request.stage_id)
        state = self._stages.get(key)
        if state is None:
            raise NotFoundError(f"no handshake for stage {request.stage_id!r}")
        handshake_id = request.handshake_id
        self._accepted.pop(handshake_id, None)
        if request.status != "completed" or request.output_ref is None:
            if handshake_id in self._running:
                stopped = self._stopped.setdefault(handshake_id, anyio.Event())
                with anyio.move_on_after(CUT_SHORT_WAIT_S):
                    await stopped.wait()
            meter = self._cut_short.pop(handshake_id, None)
            if meter is None:
                return AcknowledgeReply(handshake_id, committed=False)
            usage, cost = meter.spent()
            return AcknowledgeReply(handshake_id, committed=False, usage=usage, cost=cost)
        new_state, duplicate = state.acknowledge(request.attempt, request.output_ref)
        self._remember(key, new_state)
        return AcknowledgeReply(request.handshake_id, committed=True, duplicate=duplicate)


def _with_usage(
    summary: StageSummary, measured: Usage, meter: Meter, cpu_ms: float
) -> StageSummary:
    """The worker's summary with what the host measured: bytes, compute time, CPU time, peak
    memory, and (where the worker's model calls went through a `MeteredLLM`) every model
    call the meter counted, which replace the worker's own tally of tokens and model cost."""
    usage, cost = summary.usage + measured, summary.cost
    if meter.calls:
        tokens = meter.usage
        usage = Usage(
            tokens.prompt_tokens,
            tokens.completion_tokens,
            usage.bytes_stored,
            usage.compute_ms,
            meter.requests,
        )
        cost = Cost(meter.cost_usd, cost.storage_usd, cost.compute_usd)
    # Built directly rather than with attrs.evolve: this runs for every stage.
    return StageSummary(
        summary.method,
        usage,
        cost,
        summary.quality_score,
        summary.continue_pipeline,
        summary.notes,
        cpu_ms,
        peak_rss_kb(),
        summary.queue_ms,
    )
