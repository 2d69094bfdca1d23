"""One stage, from its input to its commit: cache, attempts, timeouts, heartbeats, quota.

Each attempt is recorded before it starts (so a crash leaves it visible as in flight), asks
the worker endpoints in turn until one accepts (waiting up to schedule-to-start while they are
busy), reserves the estimated cost before processing (so before any model is called), then
processes within start-to-close while watching the worker's heartbeats. A succeeded attempt
is committed with its checkpoint and event in one transaction, fenced on the attempt number,
and only then acknowledged to the worker. What is written, and how it joins the engine's
group commit, is in `records`.
"""

from __future__ import annotations

from typing import Any

import anyio

from .._exceptions import (
    AIFactoryError,
    HandshakeRejectedError,
    InputRejectedError,
    LeaseLostError,
    StageTimeoutError,
    TransportError,
)
from .._logs import log_context
from .._retry import RetryPolicy
from .._tracing import Attributes
from ..llm.metering import metering, spent_of
from ..models import StageRun, StageSpec, StorageRef
from ..models.execution import Cost, Usage
from ..protocol.codec import structure
from ..protocol.messages import (
    AcknowledgeRequest,
    HandshakeReply,
    HandshakeRequest,
    ProcessReply,
    ProcessRequest,
    StageSummary,
)
from . import planning
from .endpoints import WorkerTransport
from .live import Engine, Live
from .records import Records, StageWork, cached_summary

__all__ = ["StageRunner", "StageWork"]


def _spent(error: AIFactoryError) -> tuple[Usage, Cost] | None:
    """What a failed attempt's error says it spent on models (`llm.metering.spent`)."""
    found = spent_of(error)
    if found is None:
        return None
    tokens, usd, calls = found
    return Usage(tokens.prompt_tokens, tokens.completion_tokens, model_calls=calls), Cost(
        llm_usd=usd
    )


def _queued(reply: ProcessReply, queue_ms: float) -> ProcessReply:
    """`reply` whose summary says how long the attempt waited for a worker to accept it."""
    s = reply.summary
    # Built directly rather than with attrs.evolve: this runs for every stage.
    summary = StageSummary(
        s.method,
        s.usage,
        s.cost,
        s.quality_score,
        s.continue_pipeline,
        s.notes,
        s.cpu_ms,
        s.peak_rss_kb,
        round(queue_ms, 3),
    )
    return ProcessReply(reply.handshake_id, reply.attempt, reply.output_ref, summary)


#: How long to wait for a worker service to say what an attempt cut short spent.
CUT_SHORT_S = 5.0


def _cut_short(error: BaseException) -> bool:
    """Whether an attempt ended without the worker's answer (so without what it spent):
    cancelled, timed out, or its connection broke; not an error the worker answered."""
    return not isinstance(error, AIFactoryError) or isinstance(
        error, StageTimeoutError | TransportError
    )


def _kind(endpoint: WorkerTransport) -> str:
    """The span kind of a protocol step: a call to another service, or work in process."""
    return "internal" if endpoint.local else "client"


def _duration_s(run: StageRun) -> float:
    """How long the run's last attempt took, from its record to its outcome."""
    if run.started_at is None or run.finished_at is None:
        return 0.0
    return (run.finished_at - run.started_at).total_seconds()


class _AllBusy(Exception):
    """Every endpoint was busy or unreachable; `reasons` says what each answered."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


#: How long to wait between offers while every endpoint is busy: soon at first (a slot is
#: often freed within milliseconds), then every half second, until schedule-to-start.
SLOT_WAIT = RetryPolicy(
    initial_interval_s=0.005,
    maximum_interval_s=0.5,
    maximum_attempts=0,
    jitter=0.0,
    only=(_AllBusy,),
)

#: Stages whose first attempt a stage's commit recorded: the caller starts them.
Next = list[tuple[StageSpec, StageWork]]


class StageRunner:
    """Runs stages of live executions on the engine's workers."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.records = Records(engine)

    async def _emit(self, live: Live, kind: str, stage_id: str | None, **data: Any) -> None:
        await self.records.event(live, kind, stage_id, **data)
        self.e.touch(live.execution.id)

    async def run(self, live: Live, stage: StageSpec, work: StageWork | None = None) -> Next:
        """Run `stage` to success or final failure; never raises except on cancellation.

        With `work`, the stage's first attempt was recorded already (by the commit that made
        it ready). Returns the stages whose first attempt this stage's commit recorded. Lines
        logged meanwhile name the execution and the stage (`log_context`).
        """
        with log_context(execution_id=live.execution.id, stage_id=stage.id):
            return await self._run_or_fail(live, stage, work)

    async def _run_or_fail(self, live: Live, stage: StageSpec, work: StageWork | None) -> Next:
        try:
            return await self._run(live, stage, work)
        except LeaseLostError:
            # Another replica runs the execution now: this one stops, recording nothing.
            live.lost = True
            live.scope.cancel()
            return []
        except Exception as exc:
            error = exc if isinstance(exc, AIFactoryError) else None
            message = error.message if error else f"internal error: {exc!r}"
            await self.fail(live, stage, message, error.code if error else "internal_error")
            return []

    async def _run(self, live: Live, stage: StageSpec, work: StageWork | None) -> Next:
        e = self.e
        recorded = work is not None
        if work is None:
            params, bindings = self.records.inputs(live, stage)
            input_ref = await self.records.input_ref(live, stage, params, bindings)
            cache_key = await self._cache_key(live, stage, params, bindings)
            work = StageWork(params, bindings, input_ref, cache_key)
        if work.cache_key is not None:
            hit = await self._from_cache(live, stage, work, recorded)
            if hit is not None:
                return hit
        input_ref = work.input_ref
        idem = planning.idempotency_key(live.execution.id, stage.id, input_ref.sha256)
        retry = e.retry.for_stage(stage.policy)
        avoid: list[WorkerTransport] = []

        async def announce(attempt: int, error: BaseException, delay: float) -> None:
            e.telemetry.stage_retried(stage.worker, stage.action)
            message = error.message if isinstance(error, AIFactoryError) else repr(error)
            await self._emit(
                live,
                "stage.retrying",
                stage.id,
                error=message,
                delay_s=round(delay, 6),
                attempt=live.runs[stage.id].attempt,
            )

        first = recorded

        attributes: Attributes = {
            "aifactory.execution_id": live.execution.id,
            "aifactory.stage_id": stage.id,
            "aifactory.worker": stage.worker,
            "aifactory.action": stage.action,
        }

        async def attempt() -> tuple[ProcessReply, WorkerTransport]:
            nonlocal first
            started, first = first, False  # only the first attempt may be recorded already
            with e.tracer.span(f"stage {stage.id}", attributes):
                return await self._attempt(live, stage, input_ref, idem, avoid, started)

        reply, endpoint = await retry.call(attempt, sleep=e.sleep, rng=e.rng, before_sleep=announce)
        ready = await self._commit(live, stage, reply.output_ref, reply.summary, work.cache_key)
        if endpoint.local or live.alongside is None:
            await self._acknowledge(live, stage, endpoint, reply)
        else:
            # A round trip nothing waits for: it travels while the next stages start (the
            # stage is committed already; the run still ends only once it is answered).
            live.alongside(lambda: self._acknowledge(live, stage, endpoint, reply))
        return ready

    async def _start(self, live: Live, stage: StageSpec, input_ref: StorageRef) -> StageRun:
        # Durable before the handshake: after a crash, the next attempt number fences this one.
        run = await self.records.attempt(live, stage, input_ref)
        self.e.touch(live.execution.id)
        return run

    async def _attempt(
        self,
        live: Live,
        stage: StageSpec,
        input_ref: StorageRef,
        idem: str,
        avoid: list[WorkerTransport],
        recorded: bool = False,
    ) -> tuple[ProcessReply, WorkerTransport]:
        run = live.runs[stage.id] if recorded else await self._start(live, stage, input_ref)
        self.e.tracer.annotate("aifactory.attempt", run.attempt)
        execution_id = live.execution.id
        request = HandshakeRequest(
            execution_id, stage.id, run.attempt, stage.worker, stage.action, input_ref, idem
        )
        endpoint, accepted = await self._handshake(stage, request, avoid)
        accepted_at = self.e.clock.now()
        # Built directly rather than with attrs.evolve, which walks every field by name.
        live.runs[stage.id] = StageRun(
            execution_id=run.execution_id,
            stage_id=run.stage_id,
            worker=run.worker,
            status=run.status,
            attempt=run.attempt,
            handshake_id=accepted.handshake_id,
            input_ref=run.input_ref,
            output_ref=run.output_ref,
            summary=run.summary,
            usage=run.usage,
            cost=run.cost,
            error=run.error,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )
        # The stage holds what its earlier attempts spent and this one's estimate; this
        # attempt may spend what the stage may, less what they spent.
        before = run.cost.total_usd
        budget = await self.e.quota.reserve(
            live.execution, stage.id, before + accepted.estimate.cost_usd
        )
        if budget is not None:
            budget -= before
        # An in-process worker's model calls count here too as they are made: an attempt cut
        # short (timed out, cancelled) says nothing of them, but they were billed.
        with metering() as watched:
            try:
                reply = await self._process(
                    live,
                    stage,
                    endpoint,
                    ProcessRequest(
                        execution_id,
                        stage.id,
                        run.attempt,
                        accepted.handshake_id,
                        None if input_ref.data is not None else input_ref,
                        budget,
                    ),
                )
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    if isinstance(exc, StageTimeoutError | TransportError):
                        avoid.append(endpoint)  # the next attempt goes to another endpoint
                    spent = _spent(exc) if isinstance(exc, AIFactoryError) else None
                    if spent is None and watched.calls:
                        spent = watched.spent()
                    if spent is None and not endpoint.local and _cut_short(exc):
                        spent = await self._spent_elsewhere(endpoint, run, accepted.handshake_id)
                    if isinstance(exc, AIFactoryError):
                        await self.records.error(live, stage, exc.message, spent)
                    elif spent is not None:
                        await self.records.error(live, stage, "cancelled", spent)
                    # What the stage's attempts spent stays held, so that a retry (or another
                    # execution) cannot spend it again before the execution is charged.
                    so_far = live.runs[stage.id].cost.total_usd
                    if so_far > 0:
                        await self.e.quota.settle(live.execution, stage.id, so_far)
                    else:
                        await self.e.quota.release(live.execution, stage.id)
                raise
        if run.started_at is not None and accepted_at > run.started_at:
            reply = _queued(reply, (accepted_at - run.started_at).total_seconds() * 1000)
        return reply, endpoint

    async def _spent_elsewhere(
        self, endpoint: WorkerTransport, run: StageRun, handshake_id: str
    ) -> tuple[Usage, Cost] | None:
        """What an attempt cut short at a worker service spent on models: its reply never
        came, so the worker tells it in answer to the acknowledge that gives the attempt up
        (waited for at most `CUT_SHORT_S`; None when it cannot tell)."""
        request = AcknowledgeRequest(
            run.execution_id, run.stage_id, run.attempt, handshake_id, "cancelled"
        )
        with anyio.move_on_after(CUT_SHORT_S):
            try:
                reply = await endpoint.acknowledge(request)
            except AIFactoryError:
                return None
            if reply.usage is not None and reply.cost is not None:
                return reply.usage, reply.cost
        return None

    async def _handshake(
        self, stage: StageSpec, request: HandshakeRequest, avoid: list[WorkerTransport]
    ) -> tuple[WorkerTransport, HandshakeReply]:
        limit = stage.policy.schedule_to_start_s or self.e.timeouts.schedule_to_start_s
        deadline = None if limit is None else anyio.current_time() + limit

        async def give_up_at_deadline(_attempt: int, error: BaseException, pause: float) -> None:
            if deadline is not None and anyio.current_time() + pause > deadline:
                assert isinstance(error, _AllBusy)
                raise StageTimeoutError(
                    f"no {stage.worker} endpoint accepted stage {stage.id} within {limit:g} s"
                    f" ({'; '.join(error.reasons) or 'no healthy endpoint'})",
                    details={"timeout": "schedule_to_start", "stage_id": stage.id},
                ) from None

        # Busy workers free their slots in real time, so the wait sleeps on the real clock.
        return await SLOT_WAIT.call(
            lambda: self._offer(stage, request, avoid, wait=deadline is not None),
            sleep=anyio.sleep,
            before_sleep=give_up_at_deadline,
        )

    async def _offer(
        self,
        stage: StageSpec,
        request: HandshakeRequest,
        avoid: list[WorkerTransport],
        *,
        wait: bool,
    ) -> tuple[WorkerTransport, HandshakeReply]:
        """Offer the stage to each healthy endpoint in turn; the first to accept takes it.

        Raises `_AllBusy` when every endpoint was busy or unreachable (worth waiting for),
        `InputRejectedError` when one refused the input itself, and `HandshakeRejectedError`
        when there is no healthy endpoint and no schedule-to-start to wait within.
        """
        e = self.e
        reasons: list[str] = []
        for endpoint in await e.registry.candidates(stage.worker, avoid):
            try:
                # One span per offer: the endpoints that were busy show as their own.
                with e.tracer.span(f"handshake {stage.worker}", kind=_kind(endpoint)) as span:
                    reply = await endpoint.handshake(request)
                    e.tracer.outcome(span, "accepted" if reply.accepted else "refused")
                e.registry.seen(endpoint)
            except TransportError as exc:
                e.registry.mark_unhealthy(endpoint)
                reasons.append(exc.message)
                continue
            if reply.accepted:
                return endpoint, reply
            if not reply.retryable:
                raise InputRejectedError(
                    f"{stage.worker} refused the input of stage {stage.id}: {reply.reason}",
                    details={"stage_id": stage.id, "reason": reply.reason},
                )
            reasons.append(reply.reason or "rejected")
        if not reasons and not wait:
            raise HandshakeRejectedError(
                f"no healthy {stage.worker} endpoint for stage {stage.id}",
                details={"stage_id": stage.id},
            )
        raise _AllBusy(reasons)

    async def _process(
        self, live: Live, stage: StageSpec, endpoint: WorkerTransport, request: ProcessRequest
    ) -> ProcessReply:
        e = self.e
        heartbeat = stage.policy.heartbeat_s or e.timeouts.heartbeat_s
        limit = stage.policy.start_to_close_s or e.timeouts.start_to_close_s
        # One cancel scope watches both timeouts: its deadline is the earlier of start-to-close
        # and the next heartbeat due, moved on by each heartbeat. No watcher task to start,
        # wake up periodically and cancel for every stage.
        close_at = anyio.current_time() + limit if limit is not None else float("inf")
        span = e.tracer.span(f"process {stage.worker}", kind=_kind(endpoint))
        with span, anyio.CancelScope() as scope:

            def due(now: float) -> float:
                return min(close_at, now + heartbeat) if heartbeat else close_at

            scope.deadline = due(anyio.current_time())

            async def beat(percent: float, message: str) -> None:
                scope.deadline = due(anyio.current_time())
                await self._emit(
                    live,
                    "stage.progress",
                    stage.id,
                    percent=percent,
                    message=message,
                    attempt=request.attempt,
                )

            return await endpoint.process(request, beat)
        if heartbeat and anyio.current_time() < close_at:
            raise StageTimeoutError(
                f"stage {stage.id} sent no heartbeat for {heartbeat:g} s",
                details={"timeout": "heartbeat", "stage_id": stage.id},
            )
        raise StageTimeoutError(
            f"stage {stage.id} did not finish within {limit:g} s",
            details={"timeout": "start_to_close", "stage_id": stage.id},
        )

    async def _commit(
        self,
        live: Live,
        stage: StageSpec,
        output_ref: StorageRef,
        summary: StageSummary,
        cache_key: str | None,
        *,
        cached: bool = False,
    ) -> Next:
        """Commit a succeeded attempt (see `Records.success`), then settle its cost."""
        e = self.e
        cost = summary.cost + e.prices.cost(summary.usage)
        execution, ready = await self.records.success(
            live, stage, output_ref, summary, cost, cached=cached, cache_key=cache_key
        )
        # Its earlier attempts' spend included (the run's cost).
        run = live.runs[stage.id]
        await e.quota.settle(execution, stage.id, run.cost.total_usd)
        if not cached:
            e.telemetry.stage_succeeded(stage.worker, stage.action, _duration_s(run), summary, cost)
        if not summary.continue_pipeline:
            live.stop = True
        e.touch(execution.id)
        return ready

    async def _acknowledge(
        self,
        live: Live,
        stage: StageSpec,
        endpoint: WorkerTransport,
        reply: ProcessReply,
    ) -> None:
        try:
            span = self.e.tracer.span(
                f"acknowledge {stage.worker}",
                {"aifactory.execution_id": live.execution.id, "aifactory.stage_id": stage.id},
                kind=_kind(endpoint),
            )
            with span:
                await endpoint.acknowledge(
                    AcknowledgeRequest(
                        live.execution.id,
                        stage.id,
                        reply.attempt,
                        reply.handshake_id,
                        "completed",
                        reply.output_ref,
                    )
                )
        except Exception as exc:
            # The stage is durably committed; a lost acknowledge only leaves the worker
            # holding state it ages out, whatever went wrong (a transport that broke in an
            # unexpected way included). Record it and carry on.
            message = exc.message if isinstance(exc, AIFactoryError) else repr(exc)
            await self._emit(live, "stage.acknowledge_failed", stage.id, error=message)

    async def _cache_key(
        self, live: Live, stage: StageSpec, params: dict[str, Any], bindings: dict[str, Any]
    ) -> str | None:
        if not stage.policy.cache or live.execution.resources.get("cache") is False:
            return None
        cacheable, version = await self.e.registry.cacheable(stage.worker)
        if not cacheable:
            return None
        return planning.result_cache_key(stage.worker, version, stage.action, params, bindings)

    async def _from_cache(
        self, live: Live, stage: StageSpec, work: StageWork, recorded: bool
    ) -> Next | None:
        assert work.cache_key is not None
        hit = await self.e.store.cache_get(work.cache_key, self.e.clock.now())
        if hit is None:
            return None
        output_ref, summary_data = hit
        if output_ref.data is None and not await self.e.blobs.aexists(output_ref):
            return None  # the cached blob is gone: compute afresh
        summary = cached_summary(structure(summary_data, StageSummary))
        if not recorded:
            # No worker runs, so the attempt and its outcome are one commit.
            return await self._commit_hit(live, stage, work.input_ref, output_ref, summary)
        return await self._commit(live, stage, output_ref, summary, None, cached=True)

    async def _commit_hit(
        self,
        live: Live,
        stage: StageSpec,
        input_ref: StorageRef,
        output_ref: StorageRef,
        summary: StageSummary,
    ) -> Next:
        e = self.e
        execution, ready = await self.records.success(
            live,
            stage,
            output_ref,
            summary,
            summary.cost,
            cached=True,
            cache_key=None,
            input_ref=input_ref,
        )
        await e.quota.settle(execution, stage.id, summary.cost.total_usd)
        e.touch(execution.id)
        return ready

    async def fail(self, live: Live, stage: StageSpec, message: str, code: str) -> None:
        """Record a stage's final failure; a required stage stops the pipeline, unless the
        template allows partial completion (then only the stages depending on it are
        skipped)."""
        e = self.e
        execution = await self.records.failure(live, stage, message, code)
        e.telemetry.stage_failed(stage.worker, stage.action, _duration_s(live.runs[stage.id]))
        await e.quota.release(execution, stage.id)
        if stage.required and not execution.template.allow_partial:
            live.stop = True
        e.touch(execution.id)
