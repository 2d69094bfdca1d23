"""One trace across processes' worth of services: a client's span, the factory served by
uvicorn on 127.0.0.1, and two worker services (uvicorn too) reached over signed HTTP, each
with a `TracerProvider` of its own (as separate processes would have). The trace context
travels in `traceparent` headers; each side's spans come back from its in-memory
exporter; and `aifactory serve` with `AIFACTORY_TRACING=otlp` exports to an OTLP receiver on
127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aifactory import AsyncFactory, RandomIds, SystemClock
from aifactory._embedded import EmbeddedFactory
from aifactory._tracing import OpenTelemetryTracer
from aifactory.auth.signing import SignatureVerifier, generate_worker_key
from aifactory.models import ExecutionStatus
from aifactory.server import serving, worker_app
from aifactory.storage import BlobStore, StorageConfig
from aifactory.transports import HttpWorkerTransport
from aifactory.workers import ContentGranulator, ReportBuilder, WorkerHost
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, fast_config
from tests.servers import UvicornThread, cli_server
from tests.test_logs import _clean_env
from tests.test_tracing import Traced, _id, _parent, _trace

pytestmark = pytest.mark.anyio


def _only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    [span] = [s for s in spans if s.name == name]
    return span


async def test_one_execution_is_one_trace_across_the_factory_and_worker_services(
    tmp_path: Path,
) -> None:
    client, factory_side, granulator_side, builder_side = Traced(), Traced(), Traced(), Traced()
    key = generate_worker_key("orchestrator")
    verifier = SignatureVerifier({key.worker_id: key}, SystemClock())
    blobs = BlobStore(StorageConfig.local(tmp_path / "blobs"))
    ids = RandomIds()

    def service(worker: ContentGranulator | ReportBuilder, traced: Traced) -> UvicornThread:
        host = WorkerHost(worker, blobs, SystemClock(), ids)
        tracer = OpenTelemetryTracer(traced.provider)
        return UvicornThread(worker_app([host], verifier, storage=blobs, tracer=tracer))

    with (
        service(ContentGranulator(), granulator_side) as granulator,
        service(ReportBuilder(), builder_side) as builder,
    ):
        endpoints = [
            HttpWorkerTransport(granulator.url, "content_granulator", key),
            HttpWorkerTransport(builder.url, "report_builder", key),
        ]
        config = fast_config(tmp_path, workers=[], tracing=factory_side.provider)
        runtime = EmbeddedFactory(config, endpoints=endpoints)
        password = await runtime.accounts.bootstrap_admin(ADMIN)
        with UvicornThread(serving(runtime)) as server:
            async with AsyncFactory.connect(server.url) as factory:
                admin = await factory.login(ADMIN, password, login_type="admin")
                acme = await admin.clients.create(
                    name="Acme", tier="standard", monthly_budget_usd=50
                )
                await admin.users.create(
                    email=ANA, password=ANA_PASSWORD, role="client", client_id=acme.id
                )
                ana = await factory.login(ANA, ANA_PASSWORD)
                request = await ana.requests.create(title="Market analysis for AI tools")
                await admin.requests.assign_template(request.id, "quick_research")
                # The client's own span: the factory's spans continue it.
                tracer = client.provider.get_tracer("a client application")
                with tracer.start_as_current_span("ask for the report"):
                    execution = await admin.requests.execute(request.id)
                final = await admin.executions.wait(execution.id, timeout_s=60)
    assert final.status is ExecutionStatus.COMPLETED, final.error

    root = client.one("ask for the report")
    spans = [s for t in (factory_side, granulator_side, builder_side) for s in t.spans]
    traced = [s for s in spans if _trace(s) == _trace(root)]
    # The factory's answer to the call, its operation, the run and its stages.
    served = _only(traced, "POST /api/kam/requests/{request_id}/execute")
    assert served.kind is SpanKind.SERVER
    assert _parent(served) == _id(root)
    assert served.attributes is not None
    assert served.attributes["http.response.status_code"] == 200
    call = _only(traced, "requests.execute")
    assert _parent(call) == _id(served)
    run = _only(traced, "execution quick_research")
    assert _parent(run) == _id(call)
    # Each worker service's side of each step is a child of the orchestrator's client span.
    for worker, stage, side in (
        ("content_granulator", "outline", granulator_side),
        ("report_builder", "report", builder_side),
    ):
        attempt = _only(traced, f"stage {stage}")
        assert _parent(attempt) == _id(run)
        for step, route in (
            ("handshake", "/api/handshake"),
            ("process", "/api/process"),
            ("acknowledge", "/api/acknowledge"),
        ):
            ours = _only(traced, f"{step} {worker}")
            if step != "acknowledge":
                assert _parent(ours) == _id(attempt)
            assert ours.kind is SpanKind.CLIENT
            theirs = _only(list(side.spans), f"POST {route}")
            assert (_trace(theirs), _parent(theirs)) == (_trace(root), _id(ours))
            inside = _only(list(side.spans), f"worker {step} {worker}")
            assert _parent(inside) == _id(theirs)
            assert inside.attributes is not None
            assert inside.attributes["aifactory.execution_id"] == execution.id


class Collector:
    """An OTLP/HTTP trace receiver on 127.0.0.1: what `aifactory serve` exports arrives here
    as protobuf, and is kept as (service name, span name) pairs."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []

        async def traces(request: Request) -> Response:
            sent = ExportTraceServiceRequest.FromString(await request.body())
            for batch in sent.resource_spans:
                names = {a.key: a.value.string_value for a in batch.resource.attributes}
                for scope in batch.scope_spans:
                    self.spans += [(names["service.name"], s.name) for s in scope.spans]
            answer = ExportTraceServiceResponse().SerializeToString()
            return Response(answer, media_type="application/x-protobuf")

        self.app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])


def test_aifactory_serve_exports_its_spans_over_otlp(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    env = _clean_env()
    init = [sys.executable, "-m", "aifactory.cli", "init", "--home", home, "--admin-email", ADMIN]
    made = subprocess.run(init, capture_output=True, text=True, env=env, timeout=120)
    assert made.returncode == 0, made.stderr
    collector = Collector()
    with UvicornThread(collector.app) as receiver:
        traced = _clean_env(
            AIFACTORY_TRACING="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_SERVICE_NAME="factory-eu-1",
            OTEL_BSP_SCHEDULE_DELAY="50",  # milliseconds between exports
        )
        with cli_server("serve", "factory", "--home", home, env=traced) as url:
            refused = httpx.post(
                f"{url}/api/auth/login", json={"username": ADMIN, "password": "wrong"}
            )
            assert refused.status_code == 401
            deadline = time.monotonic() + 30
            wanted = ("factory-eu-1", "POST /api/auth/login")
            while wanted not in collector.spans:
                assert time.monotonic() < deadline, collector.spans
                time.sleep(0.05)
