"""The worker host: the protocol's rules enforced at the worker, with real storage."""

from __future__ import annotations

import json

import pytest

from aifactory import ManualClock, NotFoundError, SequentialIds, StaleAttemptError
from aifactory.models import StorageRef
from aifactory.protocol import (
    AcknowledgeRequest,
    Binding,
    HandshakeRequest,
    ProcessRequest,
    StageInput,
    dumps,
    unstructure,
)
from aifactory.storage import BlobStore, StorageConfig
from aifactory.workers import ContentGranulator, ReportBuilder, WorkerHost

pytestmark = pytest.mark.anyio


@pytest.fixture
def blobs() -> BlobStore:
    return BlobStore(StorageConfig.memory(), ManualClock())


def _host(blobs: BlobStore, worker: object = None) -> WorkerHost:
    return WorkerHost(worker or ContentGranulator(), blobs, ManualClock(), SequentialIds())  # type: ignore[arg-type]


def _input(blobs: BlobStore, **bindings: Binding) -> StorageRef:
    doc = StageInput("granulate", {"structure_type": "course"}, bindings)
    return blobs.put(dumps(unstructure(doc)), namespace="stages", key="e/s/input.json")


def _handshake(ref: StorageRef, attempt: int = 1) -> HandshakeRequest:
    return HandshakeRequest(
        "exec_1", "outline", attempt, "content_granulator", "granulate", ref, "idem_1"
    )


async def test_a_stage_goes_through_handshake_process_acknowledge(blobs: BlobStore) -> None:
    host = _host(blobs)
    ref = _input(blobs, topic=Binding(value="Welding"))
    reply = await host.handshake(_handshake(ref))
    assert reply.accepted
    assert reply.worker == "content_granulator"
    done = await host.process(ProcessRequest("exec_1", "outline", 1, reply.handshake_id, ref))
    output = json.loads(blobs.get(done.output_ref))
    assert output["topic"] == "Welding"
    assert output["structure_type"] == "course"
    assert done.summary.method == "non-llm:structure-template"
    assert done.summary.usage.bytes_stored > 0
    ack = AcknowledgeRequest(
        "exec_1", "outline", 1, reply.handshake_id, "completed", done.output_ref
    )
    first = await host.acknowledge(ack)
    again = await host.acknowledge(ack)
    assert (first.committed, first.duplicate) == (True, False)
    assert (again.committed, again.duplicate) == (True, True)


async def test_bad_input_is_rejected_at_handshake_not_processed(blobs: BlobStore) -> None:
    host = _host(blobs)
    reply = await host.handshake(_handshake(_input(blobs)))  # no topic
    assert not reply.accepted
    assert "topic" in (reply.reason or "")
    with pytest.raises(NotFoundError):
        await host.process(
            ProcessRequest("exec_1", "outline", 1, reply.handshake_id, _input(blobs))
        )


async def test_an_input_nested_beyond_the_parser_is_refused_not_crashed(
    blobs: BlobStore,
) -> None:
    deep = blobs.put(b"[" * 100_000 + b"]" * 100_000, namespace="stages", key="e/a/output-1.json")
    reply = await _host(blobs).handshake(_handshake(_input(blobs, topic=Binding(ref=deep))))
    assert not reply.accepted
    assert not reply.retryable  # the same input would fail again
    assert "nested too deeply" in (reply.reason or "")


async def test_inputs_bound_to_earlier_outputs_are_resolved_by_reference(blobs: BlobStore) -> None:
    structure = {"title": "T", "structure_type": "course", "elements": [], "topic": "Pottery"}
    earlier = blobs.put(dumps({"nested": structure}), namespace="stages", key="e/a/output-1.json")
    doc = StageInput(
        "build_report",
        {"format": "markdown"},
        {"structure": Binding(ref=earlier, path="nested"), "topic": Binding(value="Pottery")},
    )
    ref = blobs.put(dumps(unstructure(doc)), namespace="stages", key="e/b/input.json")
    host = _host(blobs, ReportBuilder())
    request = HandshakeRequest(
        "exec_1", "report", 1, "report_builder", "build_report", ref, "idem_2"
    )
    reply = await host.handshake(request)
    assert reply.accepted, reply.reason
    done = await host.process(ProcessRequest("exec_1", "report", 1, reply.handshake_id, ref))
    [artifact] = json.loads(blobs.get(done.output_ref))["artifacts"]
    assert artifact["name"] == "report.md"


async def test_a_replaced_attempt_cannot_commit(blobs: BlobStore) -> None:
    host = _host(blobs)
    ref = _input(blobs, topic=Binding(value="Welding"))
    old = await host.handshake(_handshake(ref, attempt=1))
    old_done = await host.process(ProcessRequest("exec_1", "outline", 1, old.handshake_id, ref))
    new = await host.handshake(_handshake(ref, attempt=2))  # attempt 1 timed out
    assert new.accepted
    with pytest.raises(StaleAttemptError):
        await host.acknowledge(
            AcknowledgeRequest(
                "exec_1", "outline", 1, old.handshake_id, "completed", old_done.output_ref
            )
        )
    with pytest.raises(StaleAttemptError):
        await host.handshake(_handshake(ref, attempt=1))


async def test_a_full_worker_rejects_by_capacity(blobs: BlobStore) -> None:
    host = _host(blobs)
    host._busy = host.worker.info.slots
    reply = await host.handshake(_handshake(_input(blobs, topic=Binding(value="x"))))
    assert not reply.accepted
    assert reply.reason == "over capacity"
    assert host.health().slots_free == 0
