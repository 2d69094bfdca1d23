"""The runner's writes go through one group commit: concurrent executions share transactions,
stages committing together add up, and a linear pipeline pays one transaction per stage."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from aifactory import StorageError
from aifactory.models import ExecutionStatus, StageStatus
from aifactory.orchestrator.live import Live
from aifactory.orchestrator.records import Records
from tests.orchestrator.harness import Harness, Step, stage, template

pytestmark = pytest.mark.anyio

LINEAR_KINDS = [
    ("execution.started", None),
    ("stage.started", "a"),
    ("stage.succeeded", "a"),
    ("stage.started", "b"),
    ("stage.succeeded", "b"),
    ("stage.started", "c"),
    ("stage.succeeded", "c"),
    ("execution.completed", None),
]


async def test_a_linear_pipeline_commits_once_per_stage() -> None:
    h = Harness([Step("w")])
    commits = h.orchestrator.engine.commits
    tpl = template(stage("a", "w"), stage("b", "w", "a"), stage("c", "w", "b"))
    done = await h.run(tpl)
    assert done.status is ExecutionStatus.COMPLETED
    # The execution's start rides with the first stage's attempt, each stage's commit also
    # records the next stage's attempt, and the finish is one more: stages + 2 transactions
    # (each stage used to take two, and the start and finish one each).
    assert commits.transactions == 5
    assert h.kinds(done.id) == LINEAR_KINDS
    seqs = [e.seq for e in h.store.list_events(done.id)]
    assert seqs == list(range(1, len(LINEAR_KINDS) + 1))
    runs = {r.stage_id: r for r in h.store.get_stage_runs(done.id)}
    assert all(r.attempt == 1 and r.status is StageStatus.SUCCEEDED for r in runs.values())
    assert [r.input_ref is not None for r in runs.values()] == [True] * 3


async def test_concurrent_executions_share_transactions_and_stay_exact() -> None:
    worker = Step("w", cost_usd="0.25", slots=100)
    h = Harness([worker], max_workers=8)
    commits = h.orchestrator.engine.commits
    tpl = template(stage("a", "w"), stage("b", "w", "a"), stage("c", "w", "b"))
    async with h.orchestrator:
        ids = [h.orchestrator.create(tpl, {"n": i}).id for i in range(20)]
        for execution_id in ids:
            h.orchestrator.launch(execution_id)
        with anyio.fail_after(10):
            finals = [await h.orchestrator.wait(i) for i in ids]
    assert all(f.status is ExecutionStatus.COMPLETED for f in finals)
    assert all(f.stages_done == 3 and f.cost.llm_usd == Decimal("0.75") for f in finals)
    for execution_id in ids:
        assert h.kinds(execution_id) == LINEAR_KINDS
        seqs = [e.seq for e in h.store.list_events(execution_id)]
        assert seqs == list(range(1, len(LINEAR_KINDS) + 1))
    assert commits.writes >= 20 * 5
    assert commits.transactions < commits.writes / 4  # many writes per transaction


async def test_parallel_stages_committing_together_add_up() -> None:
    h = Harness([Step("root"), Step("w", cost_usd="0.5", slots=8), Step("end")])
    tpl = template(
        stage("root", "root"),
        *(stage(f"w{i}", "w", "root") for i in range(4)),
        stage("end", "end", "w0", depends_on=("w0", "w1", "w2", "w3")),
    )
    done = await h.run(tpl)
    assert done.status is ExecutionStatus.COMPLETED
    assert done.stages_done == 6
    assert done.cost.llm_usd == Decimal("2.0")
    checkpoint = h.store.latest_checkpoint(done.id)
    assert checkpoint is not None
    assert checkpoint.version == 6
    assert sorted(checkpoint.completed) == sorted(["root", "w0", "w1", "w2", "w3", "end"])
    costs = [
        e.data["total_usd"] for e in h.store.list_events(done.id) if e.kind == "stage.succeeded"
    ]
    assert [Decimal(c) for c in costs] == sorted(Decimal(c) for c in costs)  # never lost


async def test_a_next_stage_that_cannot_be_prepared_is_started_the_usual_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: Records, live: object, stage: object) -> None:
        raise RuntimeError("cannot work out the input")

    monkeypatch.setattr(Records, "work_now", broken)
    h = Harness([Step("w")])
    done = await h.run(template(stage("a", "w"), stage("b", "w", "a")))
    assert done.status is ExecutionStatus.COMPLETED  # the commit that tried it stands
    assert h.kinds(done.id) == [*LINEAR_KINDS[:5], ("execution.completed", None)]
    # Without the ride-along, b's attempt took a transaction of its own.
    assert h.orchestrator.engine.commits.transactions == 5


def test_values_json_cannot_hold_are_refused_as_json_would() -> None:
    h = Harness([Step("w")])
    with pytest.raises(TypeError, match="not JSON serializable"):
        h.orchestrator.create(template(stage("a", "w", parameters={"bad": object()})), {})


async def test_a_failed_execution_write_leaves_the_live_execution_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness([Step("w")])
    tpl = template(stage("a", "w"))
    created = h.orchestrator.create(tpl, {})
    live = Live.fresh(created, h.store.get_stage_runs(created.id), h.orchestrator.engine.plan(tpl))
    records = Records(h.orchestrator.engine)

    def refuse(events: object) -> None:
        raise StorageError("disk full")

    monkeypatch.setattr(h.store, "add_events", refuse)
    with pytest.raises(StorageError):
        await h.orchestrator.engine.commits.commit(
            lambda: records.execution(live, "execution.started", status=ExecutionStatus.RUNNING)
        )
    assert live.execution == created  # as the store still has it
    assert h.store.get_execution(created.id) == created
