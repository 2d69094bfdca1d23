"""The orchestrator's runner on real SQLite and storage: DAGs, retries, timeouts, quotas,
cancellation, caching, retention."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

import anyio
import attrs
import pytest

from aifactory import ConflictError, StaleAttemptError
from aifactory.models import ExecutionStatus, StagePolicy, StageStatus, Template
from aifactory.orchestrator import RetryPolicy
from aifactory.protocol.codec import unstructure
from aifactory.state import ExecutionWrite
from aifactory.workers import WorkerContext, WorkerResult
from tests.orchestrator.harness import Budget, Harness, Step, stage, template

pytestmark = pytest.mark.anyio


async def _statuses(h: Harness, execution_id: str) -> dict[str, tuple[StageStatus, int]]:
    return {r.stage_id: (r.status, r.attempt) for r in await h.store.get_stage_runs(execution_id)}


async def test_a_dag_runs_independent_stages_side_by_side_within_max_workers() -> None:
    a, b, c, d, join = (Step(n, delay_s=0.02) for n in ("a", "b", "c", "d", "join"))
    shared = Step("wide", delay_s=0.05)
    h = Harness([a, b, c, d, join, shared], max_workers=2)
    tpl = template(
        stage("root", "a"),
        *(stage(f"w{i}", "wide", "root") for i in range(4)),
        stage("end", "join", "w0", depends_on=("w0", "w1", "w2", "w3")),
    )
    done = await h.run(tpl)
    assert done.status is ExecutionStatus.COMPLETED
    assert shared.peak == 2  # four ready stages, two at a time
    statuses = await _statuses(h, done.id)
    assert all(status is StageStatus.SUCCEEDED for status, _ in statuses.values())
    order = [s for k, s in await h.kinds(done.id) if k == "stage.started"]
    assert order[0] == "root"
    assert order[-1] == "end"


async def test_parameters_merge_worker_defaults_request_then_stage_overrides() -> None:
    class Defaults(Step):
        defaults: ClassVar[dict[str, object]] = {"colour": "grey", "size": 1, "shape": "round"}

    worker = Defaults("d")
    h = Harness([worker])
    tpl = template(stage("s", "d", parameters={"size": 3}))
    done = await h.run(tpl, {"colour": "red", "size": 2})
    out = (await h.store.get_stage_runs(done.id))[0].output_ref
    assert out is not None
    import json

    params = json.loads(h.blobs.get(out))["params"]
    assert params == {"colour": "red", "size": 3, "shape": "round"}


async def test_a_failed_optional_stage_does_not_fail_the_pipeline() -> None:
    good, bad = Step("good"), Step("bad", fail_times=99)
    h = Harness([good, bad], retry=RetryPolicy(initial_interval_s=0.5, maximum_attempts=2))
    tpl = template(
        stage("first", "good"),
        stage("extra", "bad", "first", required=False),
        stage("after_extra", "good", "extra"),
        stage("last", "good", "first"),
    )
    done = await h.run(tpl)
    assert done.status is ExecutionStatus.COMPLETED
    statuses = await _statuses(h, done.id)
    assert statuses["extra"] == (StageStatus.FAILED, 2)
    assert statuses["after_extra"][0] is StageStatus.SKIPPED
    assert statuses["last"][0] is StageStatus.SUCCEEDED


async def test_a_failed_required_stage_fails_the_execution_and_skips_the_rest() -> None:
    h = Harness([Step("ok"), Step("bad", fail_times=99)])
    done = await h.run(template(stage("a", "ok"), stage("b", "bad", "a"), stage("c", "ok", "b")))
    assert done.status is ExecutionStatus.FAILED
    assert "b: bad failed on purpose (3)" in (done.error or "")
    statuses = await _statuses(h, done.id)
    assert statuses["b"] == (StageStatus.FAILED, 3)
    assert statuses["c"][0] is StageStatus.SKIPPED
    assert h.sink.reports[-1].artifacts == ()


class Publisher(Step):
    """A step that also stores a small artifact and lists it in its output."""

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        result = await super().process(action, inputs, params, ctx)
        ref = ctx.store_artifact(
            f"made by {ctx.stage_id}".encode(), name=f"{ctx.stage_id}.txt", media_type="text/plain"
        )
        output = {
            **result.output,
            "artifacts": [{"name": f"{ctx.stage_id}.txt", "ref": unstructure(ref)}],
        }
        return WorkerResult(output=output, summary=result.summary)


def _two_branches(**changes: Any) -> Template:
    """`a` and `b` are independent; `b` fails (required) and `after_b` depends on it."""
    return template(
        stage("a", "pub"),
        stage("b", "bad"),
        stage("after_b", "pub", "b"),
        stage("late", "pub", "a"),
        **changes,
    )


async def test_allow_partial_completes_with_what_the_other_branches_delivered() -> None:
    h = Harness([Publisher("pub"), Step("bad", fail_times=99)])
    done = await h.run(_two_branches(allow_partial=True))
    assert done.status is ExecutionStatus.COMPLETED
    assert done.error is not None
    assert done.error.startswith("completed partially; b: bad failed on purpose")
    statuses = await _statuses(h, done.id)
    assert statuses["b"][0] is StageStatus.FAILED
    assert statuses["after_b"][0] is StageStatus.SKIPPED
    # The failed stage did not stop the branch that does not depend on it.
    assert statuses["late"][0] is StageStatus.SUCCEEDED
    names = sorted(a.name for a in h.sink.reports[-1].artifacts)
    assert names == ["late.txt"]  # the deliverables: stages nothing depends on
    finished = [e for e in await h.store.list_events(done.id) if e.kind == "execution.completed"]
    assert finished[-1].data["partial"] is True


async def test_without_allow_partial_a_failed_required_stage_stops_every_branch() -> None:
    h = Harness([Publisher("pub"), Step("bad", fail_times=99)], max_workers=1)
    done = await h.run(_two_branches())
    assert done.status is ExecutionStatus.FAILED
    assert h.sink.reports[-1].artifacts == ()
    statuses = await _statuses(h, done.id)
    assert statuses["after_b"][0] is StageStatus.SKIPPED
    assert statuses["late"][0] is StageStatus.SKIPPED  # one stage at a time: b failed first


async def test_allow_partial_with_nothing_delivered_still_fails() -> None:
    h = Harness([Step("ok"), Step("bad", fail_times=99)])
    tpl = template(stage("a", "ok"), stage("b", "bad", "a"), allow_partial=True)
    done = await h.run(tpl)
    assert done.status is ExecutionStatus.FAILED
    assert not (done.error or "").startswith("completed partially")
    finished = [e for e in await h.store.list_events(done.id) if e.kind == "execution.failed"]
    assert "partial" not in finished[-1].data


async def test_continue_pipeline_false_stops_cleanly() -> None:
    h = Harness([Step("ok"), Step("halt", stop=True)])
    done = await h.run(template(stage("a", "halt"), stage("b", "ok", "a")))
    assert done.status is ExecutionStatus.COMPLETED
    assert (await _statuses(h, done.id))["b"][0] is StageStatus.SKIPPED


async def test_conditions_skip_stages() -> None:
    h = Harness([Step("ok")])
    tpl = template(stage("a", "ok"), stage("b", "ok", "a", condition="params.extended == true"))
    plain = await h.run(tpl, {"extended": False})
    assert (await _statuses(h, plain.id))["b"][0] is StageStatus.SKIPPED
    extended = await h.run(tpl, {"extended": True})
    assert (await _statuses(h, extended.id))["b"][0] is StageStatus.SUCCEEDED


async def test_backoff_intervals_stay_within_their_bounds() -> None:
    policy = RetryPolicy(
        initial_interval_s=1.0,
        backoff_coefficient=3.0,
        maximum_interval_s=5.0,
        maximum_attempts=5,
        jitter=0.2,
    )
    flaky = Step("flaky", fail_times=4)
    h = Harness([flaky], retry=policy)
    done = await h.run(template(stage("s", "flaky")))
    assert done.status is ExecutionStatus.COMPLETED
    assert flaky.calls == [1, 2, 3, 4, 5]
    assert len(h.sleeps) == 4
    for attempt, waited in enumerate(h.sleeps, start=1):
        low, high = policy.delay_bounds(attempt)
        assert low <= waited <= high
    assert policy.delay_bounds(3) == (pytest.approx(5.0 * 0.8), 5.0)  # capped at the maximum
    retrying = [e for e in await h.store.list_events(done.id) if e.kind == "stage.retrying"]
    assert [e.data["delay_s"] for e in retrying] == [round(s, 6) for s in h.sleeps]


async def test_bad_input_is_never_retried() -> None:
    class Picky(Step):
        def check_input(self, action, inputs, params):  # type: ignore[no-untyped-def]
            from aifactory import BadInputError

            raise BadInputError("topic is required")

    h = Harness([Picky("picky")])
    done = await h.run(template(stage("s", "picky")))
    assert done.status is ExecutionStatus.FAILED
    assert (await _statuses(h, done.id))["s"] == (StageStatus.FAILED, 1)
    assert h.sleeps == []
    assert "refused the input" in (done.error or "")


async def test_a_silent_worker_is_abandoned_and_the_stage_moves_to_another() -> None:
    silent = Step("w", delay_s=5.0, beat_s=None)  # works long, never reports progress
    lively = Step("w", delay_s=0.05, beat_s=0.01)
    timeouts = StagePolicy(schedule_to_start_s=5.0, start_to_close_s=10.0, heartbeat_s=0.2)
    h = Harness([silent], extra_endpoints=[lively], timeouts=timeouts)
    # The registry rotates between endpoints; pin the first attempt to the silent one.
    with anyio.fail_after(5):
        done = await h.run(template(stage("s", "w")))
    assert done.status is ExecutionStatus.COMPLETED
    assert silent.calls == [1]
    assert lively.calls == [2]
    retrying = [e for e in await h.store.list_events(done.id) if e.kind == "stage.retrying"]
    assert "no heartbeat" in retrying[0].data["error"]
    progress = [e for e in await h.store.list_events(done.id) if e.kind == "stage.progress"]
    assert progress


async def test_an_attempt_past_start_to_close_times_out() -> None:
    slow = Step("slow", delay_s=5.0)
    timeouts = StagePolicy(schedule_to_start_s=1.0, start_to_close_s=0.05, heartbeat_s=None)
    h = Harness([slow], timeouts=timeouts, retry=RetryPolicy(maximum_attempts=2))
    with anyio.fail_after(5):
        done = await h.run(template(stage("s", "slow")))
    assert done.status is ExecutionStatus.FAILED
    assert "did not finish within 0.05 s" in (done.error or "")
    assert slow.calls == [1, 2]


async def test_heartbeats_keep_a_long_stage_alive_past_the_heartbeat_timeout() -> None:
    steady = Step("steady", delay_s=0.6, beat_s=0.05)  # three heartbeat timeouts long
    timeouts = StagePolicy(schedule_to_start_s=1.0, start_to_close_s=10.0, heartbeat_s=0.2)
    h = Harness([steady], timeouts=timeouts)
    with anyio.fail_after(5):
        done = await h.run(template(stage("s", "steady")))
    assert done.status is ExecutionStatus.COMPLETED
    assert steady.calls == [1]


async def test_a_beating_stage_still_ends_at_start_to_close() -> None:
    endless = Step("endless", delay_s=5.0, beat_s=0.02)
    timeouts = StagePolicy(schedule_to_start_s=1.0, start_to_close_s=0.3, heartbeat_s=0.2)
    h = Harness([endless], timeouts=timeouts, retry=RetryPolicy(maximum_attempts=1))
    with anyio.fail_after(5):
        done = await h.run(template(stage("s", "endless")))
    assert done.status is ExecutionStatus.FAILED
    assert "did not finish within 0.3 s" in (done.error or "")


async def test_busy_workers_are_waited_for_until_schedule_to_start() -> None:
    busy = Step("busy", slots=1, delay_s=0.3)
    timeouts = StagePolicy(schedule_to_start_s=0.05, start_to_close_s=5.0)
    h = Harness([busy], timeouts=timeouts, retry=RetryPolicy(maximum_attempts=1), max_workers=2)
    tpl = template(stage("a", "busy"), stage("b", "busy"))
    with anyio.fail_after(5):
        done = await h.run(tpl)
    statuses = await _statuses(h, done.id)
    assert sorted(s for s, _ in statuses.values()) == [StageStatus.FAILED, StageStatus.SUCCEEDED]
    assert "within 0.05 s" in (done.error or "")
    assert "over capacity" in (done.error or "")


async def test_a_stale_attempt_cannot_commit() -> None:
    h = Harness([Step("ok")])
    done = await h.run(template(stage("s", "ok")))
    run = (await h.store.get_stage_runs(done.id))[0]
    execution = await h.store.get_execution(done.id)
    older = attrs.evolve(run, attempt=0)
    with pytest.raises(StaleAttemptError):  # attempt 1 committed already
        await h.store.record(ExecutionWrite(done.id, finished=run, totals=execution))
    with pytest.raises(StaleAttemptError):  # an older attempt
        await h.store.record(ExecutionWrite(done.id, finished=older, totals=execution))
    assert (await h.store.latest_checkpoint(done.id)).version == 1  # type: ignore[union-attr]


async def test_quota_refuses_before_the_worker_processes() -> None:
    pricey = Step("pricey", estimate_usd="5.00")
    budget = Budget(available=Decimal("4.99"))
    h = Harness([Step("cheap", cost_usd="0.01"), pricey], quota=budget)
    done = await h.run(template(stage("a", "cheap"), stage("b", "pricey", "a")))
    assert done.status is ExecutionStatus.FAILED
    assert pricey.calls == []  # refused before processing: no model could have been called
    assert "b needs 5.00" in (done.error or "")
    assert h.sleeps == []  # quota errors are not retried
    assert ("settle", "a", Decimal("0.01")) in budget.log
    assert "b" not in budget.held


async def test_a_failed_stage_releases_what_it_reserved() -> None:
    budget = Budget()
    h = Harness([Step("bad", fail_times=99, estimate_usd="1")], quota=budget)
    await h.run(template(stage("s", "bad")))
    assert [entry[0] for entry in budget.log].count("reserve") == 3
    assert budget.held == {}


async def test_cancel_stops_a_running_execution() -> None:
    slow = Step("slow", delay_s=10.0, beat_s=0.01)
    slow.started = started = anyio.Event()
    h = Harness([slow])
    async with h.orchestrator:
        execution = await h.orchestrator.create(template(stage("s", "slow")), {})
        await h.orchestrator.launch(execution.id)
        with anyio.fail_after(5):
            await started.wait()
            cancelled = await h.orchestrator.cancel(execution.id)
    assert cancelled.status is ExecutionStatus.CANCELLED
    assert (await _statuses(h, execution.id))["s"][0] is StageStatus.CANCELLED
    assert h.sink.reports[-1].execution.status is ExecutionStatus.CANCELLED


async def test_an_execution_past_its_time_limit_fails_instead_of_running_forever() -> None:
    h = Harness([Step("slow", delay_s=10.0, beat_s=0.01)])
    with anyio.fail_after(5):
        done = await h.run(template(stage("s", "slow")), resources={"timeout_ms": 100})
    assert done.status is ExecutionStatus.FAILED
    assert "time limit" in (done.error or "")
    assert (await _statuses(h, done.id))["s"][0] is StageStatus.CANCELLED


async def test_retry_reuses_committed_stages() -> None:
    first, flaky = Step("first"), Step("flaky", fail_times=3)
    h = Harness([first, flaky])
    tpl = template(stage("a", "first"), stage("b", "flaky", "a"))
    failed = await h.run(tpl)
    assert failed.status is ExecutionStatus.FAILED
    await h.orchestrator.reopen(failed.id)
    done = await h.orchestrator.run(failed.id)
    assert done.status is ExecutionStatus.COMPLETED
    assert first.calls == [1]  # not run again
    assert flaky.calls == [1, 2, 3, 4]  # attempt numbers keep counting
    assert done.runs == 2


async def test_equal_inputs_hit_the_result_cache_unless_bypassed() -> None:
    worker = Step("w", cost_usd="0.50")
    h = Harness([worker])
    tpl = template(stage("s", "w"))
    first = await h.run(tpl, {"x": 1})
    second = await h.run(tpl, {"x": 1})
    assert len(worker.calls) == 1
    run = (await h.store.get_stage_runs(second.id))[0]
    assert run.summary["method"] == "cache:test:step"
    assert second.cost.llm_usd == 0
    assert first.cost.llm_usd == Decimal("0.50")
    await h.run(tpl, {"x": 2})  # other input
    await h.run(tpl, {"x": 1}, resources={"cache": False})  # bypassed
    assert len(worker.calls) == 3
    h.clock.advance(timedelta(hours=1, seconds=1))  # expired
    await h.run(tpl, {"x": 1})
    assert len(worker.calls) == 4


async def test_uncacheable_workers_are_never_cached() -> None:
    worker = Step("w", cacheable=False)
    h = Harness([worker])
    tpl = template(stage("s", "w"))
    await h.run(tpl)
    await h.run(tpl)
    assert len(worker.calls) == 2


async def test_retention_prunes_only_long_finished_executions() -> None:
    slow = Step("slow", delay_s=10.0, beat_s=0.01)
    slow.started = started = anyio.Event()
    h = Harness([Step("ok"), slow])
    old = await h.run(template(stage("s", "ok")))
    h.clock.advance(timedelta(days=40))
    recent = await h.run(template(stage("s", "ok")), {"n": 2})
    async with h.orchestrator:
        running = await h.orchestrator.create(template(stage("s", "slow")), {})
        await h.orchestrator.launch(running.id)
        with anyio.fail_after(5):
            await started.wait()
        counts = await h.orchestrator.prune(h.clock.now() - timedelta(days=30))
        assert counts["checkpoints"] == 1
        assert counts["events"] > 0
        assert await h.store.list_events(old.id) == []
        assert await h.store.latest_checkpoint(old.id) is None
        assert await h.store.list_events(recent.id) != []
        assert await h.store.list_events(running.id) != []
        await h.orchestrator.cancel(running.id)


class _Reporting(Step):
    """A step whose output lists one artifact, as report workers do."""

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        result = await super().process(action, inputs, params, ctx)
        ref = ctx.write_artifact(b"# report\n", "report.md", "text/markdown")
        output = {**result.output, "artifacts": [{"name": "report.md", "ref": unstructure(ref)}]}
        return WorkerResult(output=output, summary=result.summary)


async def test_a_finished_execution_can_be_reported_again_with_its_artifacts() -> None:
    h = Harness([_Reporting("r")])
    done = await h.run(template(stage("s", "r")))
    [first] = h.sink.reports
    again = await h.orchestrator.report(done.id)
    assert again == done
    assert h.sink.reports[1] == first  # the same execution and artifacts, for an idempotent sink
    assert [a.name for a in first.artifacts] == ["report.md"]

    pending = await h.orchestrator.create(template(stage("s", "r")), {})
    with pytest.raises(ConflictError, match="has not finished"):
        await h.orchestrator.report(pending.id)
