"""The worker service over HTTP: `worker_app` served by a real uvicorn on 127.0.0.1 and through
httpx's ASGI transport, driven by `HttpWorkerTransport` with real workers and shared storage."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import anyio
import attrs
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from aifactory import (
    AuthenticationError,
    BadInputError,
    ManualClock,
    NotFoundError,
    SequentialIds,
    StageFailedError,
    StaleAttemptError,
    SystemClock,
    TransportError,
)
from aifactory.auth.signing import SignatureVerifier, WorkerKey, generate_worker_key, sign
from aifactory.models import ExecutionStatus, StageSpec, StorageRef, Template, Tier
from aifactory.orchestrator import ExecutionReport, Orchestrator, WorkerRegistry
from aifactory.protocol import (
    AcknowledgeRequest,
    Binding,
    HandshakeRequest,
    ProcessReply,
    ProcessRequest,
    StageInput,
    StageSummary,
    dumps,
    structure,
    to_json,
    unstructure,
)
from aifactory.protocol.messages import AcknowledgeByDigest
from aifactory.server.worker_app import worker_app
from aifactory.state.sqlite import SQLiteStore
from aifactory.storage import BlobStore, StorageConfig
from aifactory.transports.http_workers import HttpWorkerTransport
from aifactory.workers import (
    ContentGranulator,
    ReportBuilder,
    Worker,
    WorkerContext,
    WorkerHost,
    WorkerInfo,
    WorkerResult,
)

pytestmark = pytest.mark.anyio

ORCHESTRATOR = generate_worker_key("orchestrator")


class Flaky(Worker):
    """Reports progress, then fails (`fail`), or waits until its first heartbeat was seen."""

    info: ClassVar[WorkerInfo] = WorkerInfo(name="flaky", description="test", actions=("run",))

    def __init__(
        self, *, fail: bool = False, seen: threading.Event | None = None, hang: bool = False
    ) -> None:
        self.fail = fail
        self.seen = seen
        self.hang = hang
        self.cancelled = threading.Event()

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        await ctx.progress(25, "started")
        if self.fail:
            raise RuntimeError("the flaky worker broke")
        if self.hang:
            try:
                await anyio.sleep(30)
            except anyio.get_cancelled_exc_class():
                self.cancelled.set()
                raise
        if self.seen is not None:
            # Finishes only once the caller has received the heartbeat: proves streaming.
            deadline = time.monotonic() + 10
            while not self.seen.is_set():
                if time.monotonic() > deadline:
                    raise RuntimeError("the heartbeat never reached the caller")
                await anyio.sleep(0.005)
        return WorkerResult({"ok": True}, StageSummary(method="test:flaky"))


class Quiet(Worker):
    """Answers at once, without reporting progress."""

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="quiet", description="test", actions=("granulate",)
    )

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        return WorkerResult({"ok": True, "pad": "x" * 600}, StageSummary(method="test:quiet"))


class Server:
    """A worker service under uvicorn on a free port of 127.0.0.1, in a background thread."""

    def __init__(self, app: Starlette) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False, http="h11", ws="none"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the worker service did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


class Service:
    """Hosts served one way (uvicorn or ASGI), plus what a test needs to talk to them."""

    def __init__(
        self,
        base_url: str,
        pool: httpx.AsyncBaseTransport,
        client: httpx.AsyncClient,
        blobs: BlobStore,
    ) -> None:
        self.base_url = base_url
        self.pool = pool  # what the worker transports send through
        self.client = client  # the same pool, for raw requests
        self.blobs = blobs  # the orchestrator side's own view of the shared storage

    def transport(self, worker: str, key: WorkerKey = ORCHESTRATOR, **kw: Any) -> Any:
        return HttpWorkerTransport(self.base_url, worker, key, http_transport=self.pool, **kw)

    async def post(
        self, path: str, body: bytes, *, key: WorkerKey | None = ORCHESTRATOR
    ) -> httpx.Response:
        headers = sign("POST", path, body, key, now=time.time()) if key else {}
        return await self.client.post(f"{self.base_url}{path}", content=body, headers=headers)


def _hosts(root: Path, *workers: Worker) -> list[WorkerHost]:
    # The worker side opens the shared folder itself, as a separate process would.
    blobs = BlobStore(StorageConfig.local(root), SystemClock())
    ids = SequentialIds()
    return [WorkerHost(w, blobs, SystemClock(), ids) for w in workers]


def _verifier() -> SignatureVerifier:
    return SignatureVerifier({ORCHESTRATOR.worker_id: ORCHESTRATOR}, SystemClock())


def _serve(way: str, app: Starlette, root: Path) -> Any:
    """An async context manager yielding a `Service` for `app` served `way`."""

    class _Served:
        async def __aenter__(self) -> Service:
            self._server: Server | None = None
            pool: httpx.AsyncBaseTransport
            if way == "uvicorn":
                self._server = Server(app).__enter__()
                pool = httpx.AsyncHTTPTransport()
                base_url = self._server.base_url
            else:
                pool = httpx.ASGITransport(app=app)
                base_url = "http://worker.test"
            self._client = client = httpx.AsyncClient(transport=pool)
            blobs = BlobStore(StorageConfig.local(root), SystemClock())
            return Service(base_url, pool, client, blobs)

        async def __aexit__(self, *exc: object) -> None:
            await self._client.aclose()
            if self._server is not None:
                self._server.__exit__()

    return _Served()


@pytest.fixture(params=["uvicorn", "asgi"])
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def service(way: str, tmp_path: Path) -> AsyncIterator[Service]:
    hosts = _hosts(tmp_path, ContentGranulator(), ReportBuilder(), Flaky(fail=True), Quiet())
    async with _serve(way, worker_app(hosts, _verifier()), tmp_path) as served:
        yield served


def _stage_input(blobs: BlobStore, stage: str = "outline", **bindings: Binding) -> StorageRef:
    doc = StageInput("granulate", {"structure_type": "course"}, bindings)
    return blobs.put(dumps(unstructure(doc)), namespace="stages", key=f"exec_1/{stage}/in.json")


def _offer(ref: StorageRef, attempt: int = 1, worker: str = "content_granulator") -> Any:
    action = "run" if worker == "flaky" else "granulate"
    return HandshakeRequest("exec_1", "outline", attempt, worker, action, ref, "idem_1")


# -- the protocol over HTTP --------------------------------------------------------------------


async def test_handshake_process_acknowledge_over_http(service: Service) -> None:
    transport = service.transport("content_granulator")
    # Data moves by reference: a big input document lives in storage, not in the messages.
    ref = _stage_input(
        service.blobs, topic=Binding(value="Welding"), notes=Binding(value="x" * 50_000)
    )
    assert ref.data is None
    accepted = await transport.handshake(_offer(ref))
    assert accepted.accepted, accepted.reason
    beats: list[tuple[float, str]] = []

    async def on_progress(percent: float, message: str) -> None:
        beats.append((percent, message))

    done = await transport.process(
        ProcessRequest("exec_1", "outline", 1, accepted.handshake_id, ref), on_progress
    )
    assert [p for p, _ in beats] == [10, 30, 80, 100]
    output = json.loads(service.blobs.get(done.output_ref))
    assert output["topic"] == "Welding"
    assert done.summary.method == "non-llm:structure-template"
    ack = AcknowledgeRequest(
        "exec_1", "outline", 1, accepted.handshake_id, "completed", done.output_ref
    )
    first, again = await transport.acknowledge(ack), await transport.acknowledge(ack)
    assert (first.committed, first.duplicate) == (True, False)
    assert (again.committed, again.duplicate) == (True, True)
    traffic = transport.traffic
    assert traffic.requests == 4
    assert 0 < traffic.bytes_sent < 8_000  # the 50 kB input never crossed the wire
    assert 0 < traffic.bytes_received < 8_000


async def test_a_stale_attempt_is_raised_on_the_client_side(service: Service) -> None:
    transport = service.transport("content_granulator")
    ref = _stage_input(service.blobs, topic=Binding(value="Welding"))
    old = await transport.handshake(_offer(ref, attempt=1))
    done = await transport.process(ProcessRequest("exec_1", "outline", 1, old.handshake_id, ref))
    assert (await transport.handshake(_offer(ref, attempt=2))).accepted
    with pytest.raises(StaleAttemptError) as caught:
        await transport.acknowledge(
            AcknowledgeRequest(
                "exec_1", "outline", 1, old.handshake_id, "completed", done.output_ref
            )
        )
    assert caught.value.details["current_attempt"] == 2
    with pytest.raises(StaleAttemptError):
        await transport.handshake(_offer(ref, attempt=1))


async def test_errors_before_the_stream_keep_their_class(service: Service) -> None:
    transport = service.transport("content_granulator")
    ref = _stage_input(service.blobs, topic=Binding(value="Welding"))
    with pytest.raises(NotFoundError):
        await transport.process(ProcessRequest("exec_1", "outline", 1, "hs_unknown", ref))
    raw = await service.post(
        "/api/process?worker=content_granulator",
        dumps(unstructure(ProcessRequest("exec_1", "outline", 1, "hs_unknown", ref))),
    )
    assert raw.status_code == 404
    assert raw.json()["error"]["code"] == "not_found"


async def test_a_rejected_input_is_an_answer_not_an_error(service: Service) -> None:
    reply = await service.transport("content_granulator").handshake(
        _offer(_stage_input(service.blobs))
    )
    assert not reply.accepted
    assert not reply.retryable
    assert "topic" in (reply.reason or "")


async def test_a_failure_after_heartbeats_ends_the_stream_with_its_error(service: Service) -> None:
    transport = service.transport("flaky")
    ref = _stage_input(service.blobs)
    accepted = await transport.handshake(_offer(ref, worker="flaky"))
    beats: list[float] = []

    async def on_progress(percent: float, message: str) -> None:
        beats.append(percent)

    with pytest.raises(StageFailedError) as caught:
        await transport.process(
            ProcessRequest("exec_1", "outline", 1, accepted.handshake_id, ref), on_progress
        )
    assert beats == [25]
    assert "flaky worker broke" in caught.value.message
    assert "Traceback" not in caught.value.message


async def test_process_answers_ndjson_lines(service: Service) -> None:
    transport = service.transport("content_granulator")
    ref = _stage_input(service.blobs, topic=Binding(value="Glass"))
    accepted = await transport.handshake(_offer(ref))
    body = dumps(unstructure(ProcessRequest("exec_1", "outline", 1, accepted.handshake_id, ref)))
    raw = await service.post("/api/process?worker=content_granulator", body)
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in raw.text.splitlines()]
    assert [set(line) for line in lines] == [{"progress"}] * 4 + [{"result"}]
    assert lines[0]["progress"] == {"percent": 10.0, "message": "checking input"}
    # The result leaves out what the request said; the output is there.
    assert "handshake_id" not in lines[-1]["result"]
    assert "attempt" not in lines[-1]["result"]
    assert lines[-1]["result"]["output_ref"]["ref"].startswith("kv://stages/exec_1/outline/")


async def test_a_stage_without_heartbeats_is_answered_plain_json(service: Service) -> None:
    ref = _stage_input(service.blobs)
    accepted = await service.transport("quiet").handshake(_offer(ref, worker="quiet"))
    assert accepted.accepted, accepted.reason
    request = ProcessRequest("exec_1", "outline", 1, accepted.handshake_id, ref)
    raw = await service.post("/api/process?worker=quiet", dumps(unstructure(request)))
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/json"
    answer = raw.json()
    assert "handshake_id" not in answer  # what the request said is not repeated
    reply = structure({**answer, "handshake_id": accepted.handshake_id, "attempt": 1}, ProcessReply)
    assert json.loads(service.blobs.get(reply.output_ref))["ok"] is True
    # The transport takes this form as readily as a stream.
    again = await service.transport("quiet").handshake(_offer(ref, attempt=2, worker="quiet"))
    done = await service.transport("quiet").process(
        ProcessRequest("exec_1", "outline", 2, again.handshake_id, ref)
    )
    assert (done.attempt, done.summary.method) == (2, "test:quiet")


async def test_messages_leave_default_fields_out_on_the_wire(service: Service) -> None:
    ref = _stage_input(service.blobs)
    offer = _offer(ref, worker="quiet")
    assert "requirements" not in unstructure(offer, omit_defaults=True)
    raw = await service.post("/api/handshake?worker=quiet", to_json(offer, omit_defaults=True))
    assert raw.status_code == 200
    reply = raw.json()
    assert reply["accepted"] is True
    assert not {"reason", "retryable"} & set(reply)  # None and True: the defaults
    # Read back, the defaults are there again.
    parsed = await service.transport("quiet").handshake(_offer(ref, attempt=2, worker="quiet"))
    assert (parsed.reason, parsed.retryable) == (None, True)


async def test_an_acknowledge_names_the_output_by_its_digest(service: Service) -> None:
    transport = service.transport("quiet")
    ref = _stage_input(service.blobs)
    accepted = await transport.handshake(_offer(ref, worker="quiet"))
    done = await transport.process(ProcessRequest("exec_1", "outline", 1, accepted.handshake_id))
    assert done.output_ref.data is not None  # 600 B inline: not sent back in the acknowledge
    before = transport.traffic.bytes_sent
    ack = AcknowledgeRequest(
        "exec_1", "outline", 1, accepted.handshake_id, "completed", done.output_ref
    )
    assert (await transport.acknowledge(ack)).committed
    assert transport.traffic.bytes_sent - before < len(done.output_ref.data)
    wire = AcknowledgeByDigest.of(ack)
    assert wire.output_sha256 == done.output_ref.sha256
    path = "/api/acknowledge?worker=quiet"
    # Another digest is another output: refused, as the host refuses a different output.
    other = attrs.evolve(wire, output_sha256="0" * 64)
    _assert_error(await service.post(path, to_json(other)), 409, "conflict")
    # A handshake this service reported nothing for.
    unknown = attrs.evolve(wire, handshake_id="hs_unknown")
    _assert_error(await service.post(path, to_json(unknown)), 404, "not_found")
    # The whole reference is not the wire form: an unknown field is refused, not ignored.
    _assert_error(await service.post(path, to_json(ack)), 400, "bad_input")
    again = await transport.acknowledge(ack)
    assert (again.committed, again.duplicate) == (True, True)


async def test_health_of_the_service_and_of_one_worker(service: Service) -> None:
    health = await service.transport("report_builder").health()
    assert (health.worker, health.healthy) == ("report_builder", True)
    assert health.slots_free == health.slots_total > 0
    everything = (await service.client.get(f"{service.base_url}/health")).json()
    assert everything["healthy"] is True
    assert [w["worker"] for w in everything["workers"]] == [
        "content_granulator",
        "report_builder",
        "flaky",
        "quiet",
    ]
    with pytest.raises(NotFoundError):
        await service.transport("validator").health()


# -- refusals ---------------------------------------------------------------------------------


def _assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert isinstance(error["details"], dict)


@pytest.mark.parametrize("path", ["/api/handshake", "/api/process", "/api/acknowledge"])
async def test_unsigned_or_badly_signed_calls_are_401(service: Service, path: str) -> None:
    body = b'{"anything": 1}'
    _assert_error(await service.post(path, body, key=None), 401, "authentication_failed")
    impostor = WorkerKey(ORCHESTRATOR.worker_id, b"not the orchestrator's key")
    _assert_error(await service.post(path, body, key=impostor), 401, "authentication_failed")
    headers = sign("POST", path, body, ORCHESTRATOR, now=time.time())
    tampered = await service.client.post(
        f"{service.base_url}{path}", content=body + b" ", headers=headers
    )
    _assert_error(tampered, 401, "authentication_failed")


async def test_a_replayed_request_is_401(service: Service) -> None:
    path = "/api/acknowledge?worker=content_granulator"
    body = to_json(AcknowledgeByDigest("exec_9", "s", 1, "hs_1", "failed"))
    headers = sign("POST", path, body, ORCHESTRATOR, now=time.time())
    first = await service.client.post(f"{service.base_url}{path}", content=body, headers=headers)
    _assert_error(first, 404, "not_found")  # authenticated, but no such stage
    again = await service.client.post(f"{service.base_url}{path}", content=body, headers=headers)
    _assert_error(again, 401, "authentication_failed")


async def test_auth_failures_are_raised_as_authentication_errors(service: Service) -> None:
    stranger = service.transport("content_granulator", key=generate_worker_key("stranger"))
    with pytest.raises(AuthenticationError):
        await stranger.handshake(_offer(_stage_input(service.blobs)))
    late = ManualClock()  # 2026-01-01: far from the server's wall clock
    skewed = service.transport("content_granulator", clock=late)
    with pytest.raises(AuthenticationError):
        await skewed.handshake(_offer(_stage_input(service.blobs)))


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"execution_id": 1}', "\udcff".encode("utf-8", "surrogatepass")],
)
async def test_malformed_or_mistyped_bodies_are_400(service: Service, body: bytes) -> None:
    for path in ("/api/handshake", "/api/process", "/api/acknowledge"):
        _assert_error(await service.post(path, body), 400, "bad_input")


async def test_an_oversize_body_is_413(service: Service) -> None:
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    _assert_error(await service.post("/api/handshake", body), 413, "payload_too_large")
    with pytest.raises(BadInputError):
        await service.transport("content_granulator").handshake(
            _offer(StorageRef.inline(b"x" * (1024 * 1024)))
        )


async def test_unknown_routes_and_methods_are_json_errors(service: Service) -> None:
    _assert_error(await service.client.get(f"{service.base_url}/nope"), 404, "not_found")
    wrong = await service.client.get(f"{service.base_url}/api/handshake")
    _assert_error(wrong, 405, "method_not_allowed")
    assert "POST" in wrong.headers["allow"]


async def test_process_finds_its_worker_by_the_handshake_it_continues(service: Service) -> None:
    ref = _stage_input(service.blobs, topic=Binding(value="Tin"))
    # Several workers here: the handshake names its worker, process follows the handshake.
    accepted = (await service.post("/api/handshake", dumps(unstructure(_offer(ref))))).json()
    request = ProcessRequest("exec_1", "outline", 1, accepted["handshake_id"], ref)
    done = await service.post("/api/process", dumps(unstructure(request)))
    assert done.status_code == 200
    assert "output_ref" in json.loads(done.text.splitlines()[-1])["result"]
    # A handshake no worker here accepted, or a worker not hosted: 404.
    body = dumps(unstructure(ProcessRequest("exec_1", "outline", 1, "hs_1", ref)))
    _assert_error(await service.post("/api/process", body), 404, "not_found")
    _assert_error(await service.post("/api/process?worker=nobody", body), 404, "not_found")
    offer = dumps(unstructure(_offer(ref)))
    mismatch = await service.post("/api/handshake?worker=report_builder", offer)
    _assert_error(mismatch, 400, "bad_input")


async def test_one_worker_service_needs_no_worker_name(way: str, tmp_path: Path) -> None:
    app = worker_app(_hosts(tmp_path, ContentGranulator()), _verifier())
    async with _serve(way, app, tmp_path) as service:
        ref = _stage_input(service.blobs, topic=Binding(value="Clay"))
        accepted = (await service.post("/api/handshake", dumps(unstructure(_offer(ref))))).json()
        request = ProcessRequest("exec_1", "outline", 1, accepted["handshake_id"], ref)
        done = await service.post("/api/process", dumps(unstructure(request)))
        assert "output_ref" in json.loads(done.text.splitlines()[-1])["result"]


def test_a_worker_hosted_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInputError):
        worker_app(_hosts(tmp_path, ContentGranulator(), ContentGranulator()), _verifier())


# -- the transport's own behaviour ---------------------------------------------------------------


def _refused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_a_transport_error_after_retries(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_refused_port()}"
    transport = HttpWorkerTransport(url, "content_granulator", ORCHESTRATOR, retry_pause_s=0.001)
    blobs = BlobStore(StorageConfig.local(tmp_path), SystemClock())
    try:
        with pytest.raises(TransportError) as caught:
            await transport.health()
        assert isinstance(caught.value.__cause__, httpx.ConnectError)
        assert transport.traffic.requests == 3  # the first try and two retries
        with pytest.raises(TransportError):
            await transport.handshake(_offer(_stage_input(blobs)))
        assert transport.traffic.requests == 6
        ref = _stage_input(blobs)
        with pytest.raises(TransportError):
            await transport.process(ProcessRequest("exec_1", "outline", 1, "hs_1", ref))
        assert transport.traffic.requests == 7  # process is never retried by the transport
    finally:
        await transport.aclose()


async def test_heartbeats_stream_while_the_worker_is_still_working(tmp_path: Path) -> None:
    seen = threading.Event()
    app = worker_app(_hosts(tmp_path, Flaky(seen=seen)), _verifier())
    async with _serve("uvicorn", app, tmp_path) as service:
        transport = service.transport("flaky")
        ref = _stage_input(service.blobs)
        accepted = await transport.handshake(_offer(ref, worker="flaky"))

        async def on_progress(percent: float, message: str) -> None:
            seen.set()

        done = await transport.process(
            ProcessRequest("exec_1", "outline", 1, accepted.handshake_id, ref), on_progress
        )
        assert json.loads(service.blobs.get(done.output_ref)) == {"ok": True}


async def test_a_caller_that_gives_up_stops_the_stage_at_the_worker(
    way: str, tmp_path: Path
) -> None:
    worker = Flaky(hang=True)
    [host] = _hosts(tmp_path, worker)
    async with _serve(way, worker_app([host], _verifier()), tmp_path) as service:
        transport = service.transport("flaky")
        ref = _stage_input(service.blobs)
        accepted = await transport.handshake(_offer(ref, worker="flaky"))
        beats: list[float] = []

        async def on_progress(percent: float, message: str) -> None:
            beats.append(percent)

        with anyio.move_on_after(0.5 if way == "uvicorn" else 0.1) as scope:
            await transport.process(
                ProcessRequest("exec_1", "outline", 1, accepted.handshake_id, ref), on_progress
            )
        assert scope.cancelled_caught
        if way == "uvicorn":
            assert beats == [25]  # streamed before the caller gave up
            assert await anyio.to_thread.run_sync(worker.cancelled.wait, 5)
            for _ in range(100):
                if host.health().slots_free == host.health().slots_total:
                    break
                await anyio.sleep(0.01)
            assert host.health().slots_free == host.health().slots_total
        # The service still answers on the same pooled client.
        assert (await transport.health()).healthy


async def test_a_shared_pool_outlives_its_transports(tmp_path: Path) -> None:
    app = worker_app(_hosts(tmp_path, ContentGranulator(), ReportBuilder()), _verifier())
    async with _serve("uvicorn", app, tmp_path) as service:
        one = service.transport("content_granulator")
        two = service.transport("report_builder")
        await one.aclose()
        assert (await two.health()).worker == "report_builder"
        assert (await service.client.get(f"{service.base_url}/health")).status_code == 200
        own = HttpWorkerTransport(service.base_url, "report_builder", ORCHESTRATOR)
        assert (await own.health()).healthy
        await own.aclose()
        with pytest.raises(TransportError):
            await own.health()  # its own pool went with it


# -- end to end --------------------------------------------------------------------------------


class RecordingSink:
    def __init__(self) -> None:
        self.reports: list[ExecutionReport] = []

    async def execution_finished(self, report: ExecutionReport) -> None:
        self.reports.append(report)


def _two_stage_template() -> Template:
    stages: Sequence[StageSpec] = (
        StageSpec(
            "outline",
            "content_granulator",
            "granulate",
            input_mapping={"topic": "params.topic"},
            parameters={"structure_type": "research_report"},
        ),
        StageSpec(
            "report",
            "report_builder",
            "build_report",
            depends_on=("outline",),
            input_mapping={"structure": "outline.output", "topic": "params.topic"},
            parameters={"format": "markdown"},
            deliverable=True,
        ),
    )
    return Template("remote", "Remote", "", "test", tuple(Tier), tuple(stages))


@pytest.fixture
def two_services(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    granulator = worker_app(_hosts(tmp_path, ContentGranulator()), _verifier())
    builder = worker_app(_hosts(tmp_path, ReportBuilder()), _verifier())
    with Server(granulator) as one, Server(builder) as two:
        yield one, two


async def test_the_orchestrator_runs_a_pipeline_on_two_remote_services(
    two_services: tuple[Server, Server], tmp_path: Path
) -> None:
    granulator, builder = two_services
    blobs = BlobStore(StorageConfig.local(tmp_path), SystemClock())
    async with httpx.AsyncHTTPTransport() as pool:
        endpoints = [
            HttpWorkerTransport(
                granulator.base_url, "content_granulator", ORCHESTRATOR, http_transport=pool
            ),
            HttpWorkerTransport(
                builder.base_url, "report_builder", ORCHESTRATOR, http_transport=pool
            ),
        ]
        sink = RecordingSink()
        orchestrator = Orchestrator(
            SQLiteStore(":memory:"),
            blobs,
            WorkerRegistry(endpoints),
            sink,
            clock=SystemClock(),
            ids=SequentialIds(),
        )
        async with orchestrator:
            execution = await orchestrator.create(_two_stage_template(), {"topic": "Welding"})
            final = await orchestrator.run(execution.id)
    assert final.status is ExecutionStatus.COMPLETED, final
    [report] = sink.reports
    [artifact] = report.artifacts
    assert artifact.name == "report.md"
    assert "Welding" in blobs.get(artifact.ref).decode()
    progress = [
        e for e in await orchestrator.store.list_events(execution.id) if e.kind == "stage.progress"
    ]
    assert {e.stage_id for e in progress} == {"outline", "report"}
    for endpoint in endpoints:
        # health, handshake, process, acknowledge: a few kilobytes, the data stayed in storage
        assert endpoint.traffic.bytes_sent + endpoint.traffic.bytes_received < 16_000


async def test_an_answer_for_another_attempt_is_a_transport_error(tmp_path: Path) -> None:
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    blobs = BlobStore(StorageConfig.local(tmp_path), SystemClock())
    output = blobs.put(b'{"ok": true}', namespace="stages", key="e/s/output-1.json")

    async def process(request: Request) -> JSONResponse:
        # A confused service: answers attempt 9 for a request about attempt 1.
        return JSONResponse({"attempt": 9, "output_ref": unstructure(output), "summary": {}})

    async def acknowledge(request: Request) -> JSONResponse:
        return JSONResponse({"handshake_id": "hs_someone_else", "committed": True})

    app = Starlette(
        routes=[
            Route("/api/process", process, methods=["POST"]),
            Route("/api/acknowledge", acknowledge, methods=["POST"]),
        ]
    )
    transport = HttpWorkerTransport(
        "http://worker.test", "w", ORCHESTRATOR, http_transport=httpx.ASGITransport(app=app)
    )
    with pytest.raises(TransportError, match="attempt 9"):
        await transport.process(ProcessRequest("exec_1", "s", 1, "hs_1", None))
    ack = AcknowledgeRequest("exec_1", "s", 1, "hs_1", "completed", output)
    with pytest.raises(TransportError, match="hs_someone_else"):
        await transport.acknowledge(ack)
