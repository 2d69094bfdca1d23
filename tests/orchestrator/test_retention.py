"""Retention: `prune` forgets the stage data of long-completed executions (payload rows and
files included), keeps what failed executions need for a retry and what a live cache entry
still points at, and never touches recent or running executions."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from aifactory import ManualClock
from aifactory.models import ExecutionStatus, StageStatus, StorageRef
from aifactory.models.enums import StorageScheme
from aifactory.storage import BlobStore, PlacementPolicy, StorageConfig
from aifactory.workers.host import STAGE_NAMESPACE
from tests.orchestrator.harness import Harness, Step, stage, template

pytestmark = pytest.mark.anyio

PAD = "x" * 2000  # in every stage's parameters, so inputs and outputs are a few KB


def inline_stages() -> BlobStore:
    """Storage as the embedded factory places stage data: inline up to 64 KiB (payload rows)."""
    config = StorageConfig.memory(
        placements={STAGE_NAMESPACE: PlacementPolicy(inline_max_bytes=65536)}
    )
    return BlobStore(config, ManualClock())


def payload_count(h: Harness) -> int:
    return int(h.store.writer.database._execute("SELECT COUNT(*) FROM payloads").fetchone()[0])


async def refs(h: Harness, execution_id: str) -> list[StorageRef | None]:
    runs = sorted(await h.store.get_stage_runs(execution_id), key=lambda r: r.stage_id)
    return [ref for r in runs for ref in (r.input_ref, r.output_ref)]


async def test_prune_forgets_the_stage_data_of_long_completed_executions() -> None:
    flaky = Step("flaky", fail_times=99)
    h = Harness([Step("a"), Step("b"), flaky], blobs=inline_stages())
    pipeline = template(stage("s1", "a"), stage("s2", "b", "s1"))
    old = await h.run(pipeline, {"pad": PAD})
    failed = await h.run(template(stage("s1", "a"), stage("s2", "flaky", "s1")), {"pad": PAD})
    assert (old.status, failed.status) == (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED)
    h.clock.advance(timedelta(days=40))
    recent = await h.run(pipeline, {"pad": PAD, "n": 2})
    before = payload_count(h)
    old_usage = {r.stage_id: r.usage for r in await h.store.get_stage_runs(old.id)}

    counts = await h.orchestrator.prune(h.clock.now() - timedelta(days=30))

    # The old completed execution: two stage runs cleared, their four payloads (two inputs,
    # two outputs) deleted; what the runs say about themselves stays.
    assert counts["stage_data"] == 2
    assert counts["payloads"] == 4
    assert payload_count(h) == before - 4
    assert counts["blobs"] == 0
    assert await refs(h, old.id) == [None, None, None, None]
    runs = await h.store.get_stage_runs(old.id)
    assert {r.status for r in runs} == {StageStatus.SUCCEEDED}
    assert {r.stage_id: r.usage for r in runs} == old_usage
    assert await h.store.latest_checkpoint(old.id) is None
    # The recent one keeps everything; pruning again finds nothing more.
    assert all(ref is not None and ref.data for ref in await refs(h, recent.id))
    again = await h.orchestrator.prune(h.clock.now() - timedelta(days=30))
    assert (again["stage_data"], again["payloads"]) == (0, 0)


async def test_a_long_failed_execution_keeps_its_stage_data_and_can_still_be_retried() -> None:
    a, flaky = Step("a"), Step("flaky", fail_times=99)
    h = Harness([a, flaky], blobs=inline_stages())
    failed = await h.run(template(stage("s1", "a"), stage("s2", "flaky", "s1")), {"pad": PAD})
    assert failed.status is ExecutionStatus.FAILED
    h.clock.advance(timedelta(days=40))
    counts = await h.orchestrator.prune(h.clock.now() - timedelta(days=30))
    assert counts["stage_data"] == 0
    s1 = next(r for r in await h.store.get_stage_runs(failed.id) if r.stage_id == "s1")
    assert s1.output_ref is not None
    assert s1.output_ref.data

    flaky.fail_times = 0
    await h.orchestrator.reopen(failed.id)
    final = await h.orchestrator.run(failed.id)
    assert final.status is ExecutionStatus.COMPLETED
    assert len(a.calls) == 1  # s1's committed output was reused, not recomputed


async def test_a_payload_a_live_cache_entry_shares_is_kept() -> None:
    a = Step("a")
    h = Harness([a], blobs=inline_stages())
    pipeline = template(stage("s1", "a"))
    first = await h.run(pipeline, {"pad": PAD})
    h.clock.advance(timedelta(minutes=1))
    counts = await h.orchestrator.prune(h.clock.now())  # it finished before now; its cache entry
    assert counts["stage_data"] == 1  # (one hour) is still live
    assert counts["payloads"] == 1  # the input; the output is the cache entry's too

    second = await h.run(pipeline, {"pad": PAD})
    assert len(a.calls) == 1  # served from the cache, whose output is intact
    (run,) = await h.store.get_stage_runs(second.id)
    assert run.output_ref is not None
    assert json.loads(h.blobs.get(run.output_ref)) == {"trail": ["a"], "params": {"pad": PAD}}
    assert run.summary["method"] == "cache:test:step"
    assert first.status is second.status is ExecutionStatus.COMPLETED


async def test_stage_files_of_long_completed_executions_are_deleted() -> None:
    # The default placement: stage data of 1 KiB and more goes to KV files.
    h = Harness([Step("a"), Step("b")])
    pipeline = template(stage("s1", "a"), stage("s2", "b", "s1"))
    old = await h.run(pipeline, {"pad": PAD}, resources={"cache": False})
    files = [r for r in await refs(h, old.id) if r is not None and r.scheme is StorageScheme.KV]
    assert len(files) == 4
    assert all(h.blobs.exists(f) for f in files)
    h.clock.advance(timedelta(days=40))

    counts = await h.orchestrator.prune(h.clock.now() - timedelta(days=30))

    assert (counts["stage_data"], counts["blobs"], counts["payloads"]) == (2, 4, 0)
    assert "blobs_not_deleted" not in counts
    assert not any(h.blobs.exists(f) for f in files)
    assert await refs(h, old.id) == [None, None, None, None]
