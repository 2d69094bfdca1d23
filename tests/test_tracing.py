"""OpenTelemetry spans (`FactoryConfig.tracing`), read back from the SDK's in-memory
exporter: one trace from the call that executes a request to its execution, every stage
attempt, protocol step and model call (against a local OpenAI-compatible server); a run
resumed by another process continues the trace it was created in; and without tracing,
OpenTelemetry is never imported."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aifactory import AsyncFactory, BadInputError, FactoryConfig, RandomIds
from aifactory._tracing import NO_TRACING, OpenTelemetryTracer, open_tracer
from aifactory.llm import LLMConfig
from aifactory.models import ExecutionStatus
from aifactory.workers import ContentGranulator, ReportBuilder
from tests.helpers import fast_config, setup_people
from tests.openai_server import OpenAIServer
from tests.schema_model import answer
from tests.web.world import Gated

pytestmark = pytest.mark.anyio


class Traced:
    """A `TracerProvider` that keeps its spans in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def spans(self) -> Sequence[ReadableSpan]:
        return self.exporter.get_finished_spans()

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        [span] = self.named(name)
        return span


def _trace(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


@pytest.fixture
def model() -> Iterator[OpenAIServer]:
    with OpenAIServer(default=answer) as server:
        yield server


async def test_one_trace_from_the_execute_call_to_every_model_call(model: OpenAIServer) -> None:
    traced = Traced()
    llm = LLMConfig(model="gpt-4o-mini", api_key=secrets.token_hex(16), base_url=model.base_url)
    config = fast_config(state_url=None, llm=llm, tracing=traced.provider)
    async with AsyncFactory.embedded(config=config) as factory:
        people = await setup_people(factory)
        request = await people.ana.requests.create(title="Market analysis for AI tools")
        await people.admin.requests.assign_template(request.id, "quick_research")
        execution = await people.admin.requests.execute(request.id)
        final = await people.admin.executions.wait(execution.id, timeout_s=60)
    assert final.status is ExecutionStatus.COMPLETED, final.error

    call = traced.one("requests.execute")
    assert call.attributes is not None
    assert call.attributes["aifactory.role"] == "admin"
    assert final.trace is not None
    assert final.trace.split("-")[1] == f"{_trace(call):032x}"
    run = traced.one("execution quick_research")
    assert _parent(run) == _id(call)
    assert run.attributes is not None
    assert run.attributes["aifactory.status"] == "completed"
    assert run.attributes["aifactory.execution_id"] == execution.id
    trace = [s for s in traced.spans if _trace(s) == _trace(call)]
    names = sorted(s.name for s in trace)
    assert names == sorted(
        [
            "requests.execute",
            "execution quick_research",
            *("stage outline", "stage report"),
            *("handshake content_granulator", "handshake report_builder"),
            *("process content_granulator", "process report_builder"),
            *("acknowledge content_granulator", "acknowledge report_builder"),
            *["chat gpt-4o-mini"] * (len(names) - 10),
        ]
    )
    # Every stage attempt is a child of the run; its steps and model calls are its own.
    by_id = {_id(s): s for s in trace}
    for stage in ("outline", "report"):
        span = traced.one(f"stage {stage}")
        assert _parent(span) == _id(run)
        assert span.attributes is not None
        assert span.attributes["aifactory.attempt"] == 1
    for name in ("handshake", "process"):
        for worker, stage in (("content_granulator", "outline"), ("report_builder", "report")):
            assert _parent(traced.one(f"{name} {worker}")) == _id(traced.one(f"stage {stage}"))
    chats = traced.named("chat gpt-4o-mini")
    assert len(chats) == len(model.billed) > 0
    for chat in chats:
        assert chat.kind is SpanKind.CLIENT
        parent = by_id[_parent(chat) or 0]
        assert parent.name.startswith("process "), parent.name
    tokens = sum(
        int(c.attributes["gen_ai.usage.input_tokens"])  # type: ignore[arg-type,index]
        + int(c.attributes["gen_ai.usage.output_tokens"])  # type: ignore[arg-type,index]
        for c in chats
    )
    assert tokens == final.usage.tokens == model.billed_tokens


async def test_a_failed_stage_attempt_and_run_end_their_spans_in_error(tmp_path: Path) -> None:
    traced = Traced()
    config = fast_config(tmp_path, workers=[ContentGranulator()], tracing=traced.provider)
    async with AsyncFactory.embedded(config=config) as factory:
        people = await setup_people(factory)
        request = await people.ana.requests.create(title="A report nobody can build")
        await people.admin.requests.assign_template(request.id, "quick_research")
        with pytest.raises(Exception, match="report_builder"):
            await people.admin.requests.execute(request.id)
    # Refused before any run: the call's span says why; no execution span was made.
    call = traced.one("requests.execute")
    assert call.status.status_code is StatusCode.ERROR
    assert not [s for s in traced.spans if s.name.startswith("execution ")]


async def test_a_run_resumed_by_another_process_continues_the_trace(tmp_path: Path) -> None:
    first, second = Traced(), Traced()
    gate, started = threading.Event(), threading.Event()

    class Started(Gated):
        async def process(self, *args: Any) -> Any:
            started.set()
            return await super().process(*args)

    def config(traced: Traced) -> FactoryConfig:
        workers = [Started(ContentGranulator(), gate), ReportBuilder()]
        return fast_config(tmp_path, ids=RandomIds(), workers=workers, tracing=traced.provider)

    async with AsyncFactory.embedded(config=config(first)) as factory:
        people = await setup_people(factory)
        request = await people.ana.requests.create(title="Market analysis for AI tools")
        await people.admin.requests.assign_template(request.id, "quick_research")
        execution = await people.admin.requests.execute(request.id)
        assert await anyio.to_thread.run_sync(started.wait, 30)
    # The first process stopped mid-stage; the second resumes the run as it opens.
    gate.set()
    async with AsyncFactory.embedded(config=config(second)) as factory:
        admin = await factory.login(
            "admin@factory.example", people.admin_password, login_type="admin"
        )
        final = await admin.executions.wait(execution.id, timeout_s=30)
    assert final.status is ExecutionStatus.COMPLETED, final.error
    call = first.one("requests.execute")
    resumed = second.one("execution quick_research")
    assert (_trace(resumed), _parent(resumed)) == (_trace(call), _id(call))
    assert resumed.attributes is not None
    assert resumed.attributes["aifactory.run"] == 2
    assert {_trace(s) for s in second.spans if s.name.startswith("stage ")} == {_trace(call)}


def test_tracing_is_off_by_default_and_imports_nothing() -> None:
    assert FactoryConfig(home=None).tracing is False
    assert open_tracer(False) is NO_TRACING
    assert open_tracer(None) is NO_TRACING
    assert isinstance(open_tracer(TracerProvider()), OpenTelemetryTracer)
    script = (
        "import sys, anyio, aifactory\n"
        "from aifactory import AsyncFactory, FactoryConfig\n"
        "async def main():\n"
        "    async with AsyncFactory.embedded(config=FactoryConfig(home=None)) as f:\n"
        "        await f.bootstrap_admin('admin@factory.example')\n"
        "anyio.run(main)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


def test_the_environment_chooses_the_tracing(tmp_path: Path) -> None:
    def tracing(value: str) -> Any:
        env = {"AIFACTORY_TRACING": value, "OTEL_SERVICE_NAME": "factory-eu-1"}
        return FactoryConfig.from_environment(tmp_path, environ=env).tracing

    assert tracing("") is False
    assert tracing("off") is False
    assert tracing("global") is True
    provider = tracing("otlp")
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "factory-eu-1"
    provider.shutdown()
    with pytest.raises(BadInputError, match="AIFACTORY_TRACING must be otlp, global or off"):
        tracing("jaeger")
