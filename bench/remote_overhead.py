"""Per-stage overhead of the orchestrator calling a worker service over HTTP on 127.0.0.1.

One worker service (`worker_app` hosting the benchmark's five no-op workers, and the two
workers of the by-reference check) runs under uvicorn (h11, or httptools when installed) in a
process of its own, as a deployment runs it (`aifactory serve worker`), and shares a local
`BlobStore` folder with the orchestrator, which runs here and reaches the workers through
`HttpWorkerTransport`s sharing one keep-alive `httpx.AsyncHTTPTransport` pool. Both servers
send no `Server` or `Date` header, as `aifactory serve worker` runs a worker service. In the
same run:

- `raw round trip`: the same stack doing nothing: an `httpx.AsyncClient` POSTs a 1 KB JSON
  body to a Starlette echo route served by a second uvicorn with the same configuration; the
  median of `repeats x max(100, 3n)` single calls after a warm-up, one block of them before
  each repetition of the remote pipeline (so both are measured over the same stretch of
  time: a machine's speed drifts by 10-20% over a run);
- `aifactory_remote`: the five-stage no-op pipeline of `pipeline_overhead.py` (durable SQLite
  state, result cache off) over HTTP; per-stage overhead is
  `(median time per run - plain per run) / 5`, the median over `--repeats` repetitions of
  `--n` runs after `max(2, n / 10)` warm-up runs, `plain` being five plain calls;
- `aifactory_embedded`: the same pipeline and storage with in-process transports
  (informative: the orchestrator's own share; `remote - embedded` is what HTTP adds);
- `breakdown`: a few more remote runs with each protocol call timed as the orchestrator
  sees it (not part of the timed runs);
- `by reference`: a stage whose worker outputs a dict holding a 10 MB string, then a stage
  reading it; what each stage's transport sent and received (handshake, process,
  acknowledge, headers included, as `HttpWorkerTransport.traffic` counts them), beside the
  size the output would have inline.

Targets (issue 5): per-stage overhead at most 4x the raw round trip (three calls per stage,
so 3x is this design's floor), and under 2 KB over HTTP for the stage that outputs 10 MB.

    python bench/remote_overhead.py [--json] [--n N] [--repeats R] [--check]
                                    [--server thread|process] [--stage-inline BYTES | --wire]

Storage places stage payloads as a served deployment does (`aifactory serve` builds it from
`FactoryConfig`, as the embedded factory and `pipeline_overhead.py` do): inline up to 64 KiB,
travelling in the protocol's messages; `--stage-inline BYTES` moves that threshold, and
`--wire` uses the seed's wire placement instead (inline under 1 KiB, larger payloads as
fsync'd KV files that both sides read and write). `--server thread` runs the two servers in
a thread of this process instead: client and server then take turns on one GIL, which no
deployment does (the raw round trip is measured the same way either way). Prints a
table (with `--json`, one JSON object on stdout; progress goes to stderr) and exits 0;
`--check` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import anyio
import httpx
import uvicorn
from _noop import STAGES, _noop_worker, _NullSink, add_payload, noop_template, plain_pipeline
from _timing import time_async
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aifactory import RandomIds, SystemClock
from aifactory.auth.signing import SignatureVerifier, WorkerKey, generate_worker_key
from aifactory.config import EMBEDDED_STAGE_INLINE_BYTES
from aifactory.models import StageSpec, Template, Tier
from aifactory.orchestrator import Orchestrator, WorkerRegistry
from aifactory.protocol import StageSummary, dumps
from aifactory.protocol.codec import to_signed_json
from aifactory.protocol.messages import (
    AcknowledgeByDigest,
    AcknowledgeReply,
    AcknowledgeRequest,
    HandshakeReply,
    HandshakeRequest,
    ProcessReply,
    ProcessRequest,
    WorkerHealth,
)
from aifactory.server.worker_app import worker_app
from aifactory.state.sqlite import SQLiteStore
from aifactory.storage import BlobStore, PlacementPolicy, StorageConfig
from aifactory.transports import InProcessWorkerTransport, WorkerTransport
from aifactory.transports.http_workers import HttpWorkerTransport, Traffic
from aifactory.workers import Worker, WorkerContext, WorkerHost, WorkerInfo, WorkerResult
from aifactory.workers.base import ProgressCallback
from aifactory.workers.host import STAGE_NAMESPACE

HTTP = "httptools" if importlib.util.find_spec("httptools") else "h11"
LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
ROUNDTRIP_BODY_BYTES = 1024
BIG_OUTPUT_CHARS = 10_000_000
RATIO_LIMIT = 4.0
BYTES_LIMIT = 2048
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """How much to measure, and where temporary files go."""

    n: int
    repeats: int
    warmup: int
    folder: Path
    stage_inline: int | None  # None: the wire placement (stage payloads inline under 1 KiB)
    server: str  # "thread": uvicorn in a thread of this process; "process": in a child

    def storage(self, name: str) -> StorageConfig:
        """A local blob store under the temporary folder, with this run's placement."""
        if self.stage_inline is None:
            return StorageConfig.local(self.folder / name)
        policy = PlacementPolicy(inline_max_bytes=self.stage_inline)
        return StorageConfig.local(self.folder / name, placements={STAGE_NAMESPACE: policy})


# -- the servers ------------------------------------------------------------------------------


class ServerThread:
    """An ASGI app under uvicorn on a free 127.0.0.1 port, in its own thread and event loop."""

    def __init__(self, app: Any) -> None:
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP;
        # without it, Nagle plus delayed ACKs cost ~40 ms per response written in two parts.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        # As `aifactory serve worker` runs a worker service: no Server or Date header. The
        # echo server gets the same settings, so the raw round trip stays comparable.
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=HTTP,
            loop=LOOP,
            server_header=False,
            date_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.__exit__(None, None, None)
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.005)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse(await request.json())


def echo_app() -> Starlette:
    """The raw round trip's server: `POST /echo` answers the JSON it was sent."""
    return Starlette(routes=[Route("/echo", _echo, methods=["POST"])])


# -- the by-reference stages ------------------------------------------------------------------


class BigOutput(Worker):
    """Outputs `{"blob": <a 10 MB string>}`."""

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="big_output", description="benchmark: outputs 10 MB", actions=("emit",)
    )
    blob: ClassVar[str] = "x" * BIG_OUTPUT_CHARS

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        return WorkerResult(output={"blob": self.blob}, summary=StageSummary(method="emit"))


class ReadBig(Worker):
    """Reads the big output (its `blob` field, resolved from storage) and counts it."""

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="read_big", description="benchmark: reads the 10 MB output", actions=("count",)
    )

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        return WorkerResult(
            output={"chars": len(inputs["blob"])}, summary=StageSummary(method="count")
        )


def by_reference_template() -> Template:
    """`big` outputs 10 MB; `read` gets its `blob` by reference through storage."""
    return Template(
        name="bench_by_reference",
        display_name="Benchmark: a 10 MB output passed on by reference",
        description="Counts what the orchestrator moves over HTTP when a stage outputs 10 MB.",
        category="benchmark",
        tiers=tuple(Tier),
        stages=(
            StageSpec(id="big", worker="big_output", action="emit"),
            StageSpec(
                id="read",
                worker="read_big",
                action="count",
                input_mapping={"blob": "big.output.blob"},
            ),
        ),
    )


# -- timing -----------------------------------------------------------------------------------


def time_plain(s: Settings) -> list[float]:
    """Seconds per run of the five plain calls, one figure per repetition."""
    for _ in range(s.warmup):
        plain_pipeline({})
    figures = []
    for _ in range(s.repeats):
        gc.collect()
        start = time.perf_counter()
        for _ in range(s.n):
            data: dict[str, Any] = {}
            for stage in range(1, STAGES + 1):
                data = add_payload(data, stage)
        figures.append((time.perf_counter() - start) / s.n)
    return figures


class RoundTrips:
    """The raw round trip: 1 KB JSON echo calls, timed one by one.

    The pipeline's repetitions call `block` before each of theirs, so the baseline is
    measured across the same stretch of time as what it is compared with (a machine's speed
    drifts by 10-20% over a run).
    """

    def __init__(self, client: httpx.AsyncClient, url: str, s: Settings) -> None:
        self.client, self.url, self.s = client, url, s
        payload = {"data": ""}
        payload["data"] = "x" * (ROUNDTRIP_BODY_BYTES - len(json.dumps(payload)))
        self.payload = payload
        self.timings: list[float] = []

    async def call(self) -> None:
        response = await self.client.post(self.url, json=self.payload)
        if response.status_code != 200 or response.json() != self.payload:
            raise RuntimeError(f"the echo route answered {response.status_code}")

    async def warm_up(self) -> None:
        for _ in range(max(20, self.s.warmup)):
            await self.call()

    async def block(self) -> None:
        """`max(100, 3n)` timed calls (garbage collected first)."""
        gc.collect()
        for _ in range(max(100, 3 * self.s.n)):
            start = time.perf_counter()
            await self.call()
            self.timings.append(time.perf_counter() - start)


def pipeline_run(
    orchestrator: Orchestrator, template: Template, params: Mapping[str, Any]
) -> Callable[[], Awaitable[str]]:
    """One execution of `template` with the result cache off; returns its id."""

    async def run() -> str:
        execution = await orchestrator.create(template, params, resources={"cache": False})
        final = await orchestrator.run(execution.id)
        if final.error is not None:
            raise RuntimeError(f"the benchmark pipeline failed: {final.error}")
        return execution.id

    return run


async def output_of(orchestrator: Orchestrator, execution_id: str, stage_id: str) -> Any:
    """The JSON output a stage of an execution committed."""
    runs = {r.stage_id: r for r in await orchestrator.store.get_stage_runs(execution_id)}
    ref = runs[stage_id].output_ref
    return None if ref is None else json.loads(orchestrator.blobs.get(ref))


# -- the orchestrator's side ------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One protocol call as the orchestrator saw it: how long it took, what it moved."""

    kind: str
    seconds: float
    traffic: Traffic
    body_sent: int


class MeteredTransport:
    """A `WorkerTransport` around an `HttpWorkerTransport` that records each protocol call.

    Used only outside the timed runs (it adds a frame and a clock read per call).
    """

    def __init__(self, inner: HttpWorkerTransport) -> None:
        self.inner = inner
        self.calls: list[Call] = []

    @property
    def worker(self) -> str:
        """The worker behind the wrapped endpoint."""
        return self.inner.worker

    @property
    def local(self) -> bool:
        """As the wrapped endpoint: not."""
        return self.inner.local

    async def _record(self, kind: str, body: bytes, call: Awaitable[T]) -> T:
        before, start = self.inner.traffic, time.perf_counter()
        try:
            return await call
        finally:
            elapsed = time.perf_counter() - start
            self.calls.append(Call(kind, elapsed, self.inner.traffic - before, len(body)))

    async def handshake(self, request: HandshakeRequest) -> HandshakeReply:
        """Forward, recording the call."""
        body = to_signed_json(request)  # as the transport sends it
        return await self._record("handshake", body, self.inner.handshake(request))

    async def process(
        self, request: ProcessRequest, on_progress: ProgressCallback | None = None
    ) -> ProcessReply:
        """Forward, recording the call."""
        call = self.inner.process(request, on_progress)
        return await self._record("process", to_signed_json(request), call)

    async def acknowledge(self, request: AcknowledgeRequest) -> AcknowledgeReply:
        """Forward, recording the call."""
        call = self.inner.acknowledge(request)
        body = to_signed_json(AcknowledgeByDigest.of(request))
        return await self._record("acknowledge", body, call)

    async def health(self) -> WorkerHealth:
        """Forward (health is cached by the registry, so it is not a per-stage cost)."""
        return await self.inner.health()

    async def aclose(self) -> None:
        """Forward."""
        await self.inner.aclose()


@dataclass(frozen=True)
class Remote:
    """Where the worker service is, and how the orchestrator reaches it."""

    url: str
    key: WorkerKey
    pool: httpx.AsyncHTTPTransport
    blobs: BlobStore  # the orchestrator's, on the folder the service writes to

    def transport(self, worker: str) -> HttpWorkerTransport:
        """An endpoint for `worker` on the shared keep-alive pool."""
        return HttpWorkerTransport(self.url, worker, self.key, http_transport=self.pool)


@contextmanager
def orchestrator_on(
    folder: Path, blobs: BlobStore, transports: Iterable[WorkerTransport]
) -> Iterator[Orchestrator]:
    """An orchestrator with durable state under `folder`, its blobs in `blobs`."""
    folder.mkdir(parents=True)
    store = SQLiteStore(folder / "state.sqlite3")
    registry = WorkerRegistry(transports)
    try:
        yield Orchestrator(
            store, blobs, registry, _NullSink(), clock=SystemClock(), ids=RandomIds()
        )
    finally:
        store.close()


# -- the measurements -------------------------------------------------------------------------


async def measure_remote(remote: Remote, s: Settings, raw: RoundTrips) -> dict[str, Any]:
    """Time the no-op pipeline over HTTP, each repetition after a block of raw round trips;
    check its output and that every stage went remote."""
    transports = [remote.transport(f"noop_{i}") for i in range(1, STAGES + 1)]
    with orchestrator_on(s.folder / "remote", remote.blobs, transports) as orchestrator:
        run = pipeline_run(orchestrator, noop_template(), {"data": {}})
        await run()  # the registry's first health checks happen here, not in the timing
        await raw.warm_up()
        before = [t.traffic for t in transports]
        for _ in range(s.warmup):
            await run()
        figures = []
        for _ in range(s.repeats):
            await raw.block()
            gc.collect()
            start = time.perf_counter()
            for _ in range(s.n):
                await run()
            figures.append((time.perf_counter() - start) / s.n)
        moved = [t.traffic - b for t, b in zip(transports, before, strict=True)]
        stages = STAGES * (s.warmup + s.n * s.repeats)
        if sum(m.requests for m in moved) != 3 * stages:
            raise RuntimeError("not every stage made its three calls over HTTP")
        if await output_of(orchestrator, await run(), f"s{STAGES}") != plain_pipeline({}):
            raise RuntimeError("the remote pipeline produced the wrong output")
    return {
        "per_run": figures,
        "traffic_per_stage": {
            "requests": 3,
            "bytes_sent": round(sum(m.bytes_sent for m in moved) / stages, 1),
            "bytes_received": round(sum(m.bytes_received for m in moved) / stages, 1),
        },
    }


async def measure_embedded(s: Settings) -> list[float]:
    """Time the same pipeline with in-process transports and the same kind of storage."""
    clock, ids = SystemClock(), RandomIds()
    blobs = BlobStore(s.storage("embedded-blobs"), clock)
    transports = [
        InProcessWorkerTransport(WorkerHost(_noop_worker(i), blobs, clock, ids))
        for i in range(1, STAGES + 1)
    ]
    with orchestrator_on(s.folder / "embedded", blobs, transports) as orchestrator:
        run = pipeline_run(orchestrator, noop_template(), {"data": {}})
        figures = await time_async(run, s)
        if await output_of(orchestrator, await run(), f"s{STAGES}") != plain_pipeline({}):
            raise RuntimeError("the embedded pipeline produced the wrong output")
    return figures


async def measure_breakdown(remote: Remote, s: Settings) -> dict[str, Any]:
    """Where a remote stage's time goes: each call as the orchestrator sees it, and the rest.

    `max(10, n / 4)` runs after two, not timed with the benchmark's runs.
    """
    metered = [MeteredTransport(remote.transport(f"noop_{i}")) for i in range(1, STAGES + 1)]
    with orchestrator_on(s.folder / "breakdown", remote.blobs, metered) as orchestrator:
        run = pipeline_run(orchestrator, noop_template(), {"data": {}})
        for _ in range(2):
            await run()
        for m in metered:
            m.calls.clear()
        runs = max(10, s.n // 4)
        start = time.perf_counter()
        for _ in range(runs):
            await run()
        per_stage = (time.perf_counter() - start) / runs / STAGES
    calls = [c for m in metered for c in m.calls]
    kinds = ("handshake", "process", "acknowledge")
    seconds = {kind: [c.seconds for c in calls if c.kind == kind] for kind in kinds}
    inside = sum(statistics.fmean(v) for v in seconds.values())
    return {
        "runs": runs,
        "per_stage_us": round(per_stage * 1e6, 1),
        "calls_median_us": {k: round(statistics.median(v) * 1e6, 1) for k, v in seconds.items()},
        "calls_mean_us": {k: round(statistics.fmean(v) * 1e6, 1) for k, v in seconds.items()},
        "outside_calls_us": round((per_stage - inside) * 1e6, 1),
    }


async def measure_by_reference(remote: Remote, s: Settings) -> dict[str, Any]:
    """Run the 10 MB stage and its reader; what each moved over HTTP, call by call."""
    big, read = (
        MeteredTransport(remote.transport("big_output")),
        MeteredTransport(remote.transport("read_big")),
    )
    with orchestrator_on(s.folder / "by-reference", remote.blobs, [big, read]) as orchestrator:
        run = pipeline_run(orchestrator, by_reference_template(), {})
        await run()  # health checks and first writes
        big.calls.clear()
        read.calls.clear()
        execution_id = await run()
        inline = len(dumps(await output_of(orchestrator, execution_id, "big")))
        if await output_of(orchestrator, execution_id, "read") != {"chars": BIG_OUTPUT_CHARS}:
            raise RuntimeError("the reading stage did not get the 10 MB output")
    return {
        "big_output_stage": _stage_traffic(big.calls, inline),
        "reading_stage": _stage_traffic(read.calls, None),
    }


def _stage_traffic(calls: Sequence[Call], inline: int | None) -> dict[str, Any]:
    sent = sum(c.traffic.bytes_sent for c in calls)
    received = sum(c.traffic.bytes_received for c in calls)
    found: dict[str, Any] = {
        "requests": sum(c.traffic.requests for c in calls),
        "bytes_sent": sent,
        "bytes_received": received,
        "bytes_total": sent + received,
    }
    if inline is not None:
        found |= {"inline_bytes": inline, "inline_over_http": round(inline / (sent + received))}
    found["calls"] = {
        c.kind: {
            "bytes_sent": c.traffic.bytes_sent,
            "of_which_body": c.body_sent,
            "bytes_received": c.traffic.bytes_received,
        }
        for c in calls
    }
    return found


@contextmanager
def services(key: WorkerKey, s: Settings) -> Iterator[tuple[str, str]]:
    """The worker service and the echo server, each under uvicorn in a thread of this process.

    Yields their URLs. The service's blob store is `s.storage("blobs")`, which the
    orchestrator opens too: the two share storage, so data moves by reference.
    """
    clock, ids = SystemClock(), RandomIds()
    verifier = SignatureVerifier({key.worker_id: key}, clock)
    blobs = BlobStore(s.storage("blobs"), clock)
    workers = [*(_noop_worker(i) for i in range(1, STAGES + 1)), BigOutput(), ReadBig()]
    service = worker_app([WorkerHost(w, blobs, clock, ids) for w in workers], verifier)
    with ServerThread(service) as service_server, ServerThread(echo_app()) as echo_server:
        yield service_server.url, echo_server.url


def _serve_until_told(conn: Connection, key: str, s: Settings) -> None:
    # The child of `services_in_process`: serve, send the URLs, stop when the parent says so
    # (or goes away).
    with services(WorkerKey.parse(key), s) as urls:
        conn.send(urls)
        with contextlib.suppress(EOFError):
            conn.recv()


@contextmanager
def services_in_process(key: WorkerKey, s: Settings) -> Iterator[tuple[str, str]]:
    """`services` in a child process: its own interpreter, so no GIL shared with the caller."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve_until_told, args=(child, key.to_text(), s))
    process.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the worker service process did not start")
        yield parent.recv()
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        process.join(timeout=15)
        if process.is_alive():
            process.terminate()
            process.join()


async def measure(s: Settings, progress: Callable[[str], None]) -> dict[str, Any]:
    """Every figure of the benchmark (see the module docstring)."""
    key = generate_worker_key("orchestrator")
    serve = services_in_process if s.server == "process" else services
    figures: dict[str, Any] = {}
    with serve(key, s) as (service_url, echo_url):
        async with httpx.AsyncClient(timeout=30) as client, httpx.AsyncHTTPTransport() as pool:
            raw = RoundTrips(client, f"{echo_url}/echo", s)
            remote = Remote(service_url, key, pool, BlobStore(s.storage("blobs")))
            progress(
                "aifactory_remote: the 5 no-op stages over HTTP, each repetition after raw "
                "round trips (httpx -> uvicorn/Starlette echo, 1 KB JSON)"
            )
            figures["remote"] = await measure_remote(remote, s, raw)
            figures["roundtrip"] = raw.timings
            progress("breakdown: each call of a remote stage, timed")
            figures["breakdown"] = await measure_breakdown(remote, s)
            progress("by reference: a stage outputting 10 MB, then one reading it")
            figures["by_reference"] = await measure_by_reference(remote, s)
    progress("aifactory_embedded: the same pipeline, in-process transports")
    figures["embedded"] = await measure_embedded(s)
    progress("plain: five function calls")
    figures["plain"] = time_plain(s)
    return figures


# -- the report -------------------------------------------------------------------------------


def _target(name: str, value: float, op: str, limit: float) -> dict[str, Any]:
    met = value <= limit if op == "<=" else value < limit
    return {"name": name, "value": value, "op": op, "limit": limit, "met": met}


def report(figures: dict[str, Any], s: Settings) -> dict[str, Any]:
    """The figures as the JSON object `--json` prints."""
    timings: list[float] = figures["roundtrip"]
    rt = statistics.median(timings) * 1e6
    plain: float = statistics.median(figures["plain"])
    per_run: dict[str, list[float]] = {
        "remote": figures["remote"]["per_run"],
        "embedded": figures["embedded"],
    }

    def overhead_us(name: str) -> float:
        return (statistics.median(per_run[name]) - plain) / STAGES * 1e6

    remote, embedded = overhead_us("remote"), overhead_us("embedded")
    by_reference = figures["by_reference"]
    moved = by_reference["big_output_stage"]["bytes_total"]
    targets = [
        _target(
            "aifactory_remote per-stage overhead / raw round trip",
            round(remote / rt, 3),
            "<=",
            RATIO_LIMIT,
        ),
        _target("bytes over HTTP for the stage that outputs 10 MB", moved, "<", BYTES_LIMIT),
    ]
    return {
        "benchmark": "remote_overhead",
        "stages": STAGES,
        "raw_roundtrip_us": round(rt, 2),
        "raw_roundtrip": {
            "median_us": round(rt, 2),
            "mean_us": round(statistics.fmean(timings) * 1e6, 2),
            "p90_us": round(statistics.quantiles(timings, n=10)[-1] * 1e6, 2),
            "calls": len(timings),
            "body_bytes": ROUNDTRIP_BODY_BYTES,
        },
        "per_stage_overhead_us": {
            "aifactory_remote": round(remote, 2),
            "aifactory_embedded": round(embedded, 2),
        },
        "per_run_ms": {
            "plain": round(plain * 1e3, 6),
            **{f"aifactory_{k}": round(statistics.median(v) * 1e3, 4) for k, v in per_run.items()},
        },
        "per_run_ms_repeats": {
            f"aifactory_{k}": [round(f * 1e3, 4) for f in v] for k, v in per_run.items()
        },
        "ratios": {
            "remote overhead / raw round trip": round(remote / rt, 3),
            "design floor (3 calls per stage)": 3.0,
            "embedded overhead / raw round trip": round(embedded / rt, 3),
            # What HTTP adds per call, once the orchestrator's own (embedded) cost is taken out.
            "(remote - embedded) / 3 / raw round trip": round((remote - embedded) / 3 / rt, 3),
        },
        "breakdown": figures["breakdown"],
        "noop_stage_traffic": figures["remote"]["traffic_per_stage"],
        "by_reference": by_reference,
        "targets": targets,
        "targets_met": all(t["met"] for t in targets),
        "environment": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "server": f"uvicorn {importlib.metadata.version('uvicorn')}, http={HTTP}, "
            f"loop={LOOP}, "
            + (
                "in a child process"
                if s.server == "process"
                else "in a thread of this process (shares the GIL with the orchestrator)"
            ),
            "server_mode": s.server,
            "versions": {
                p: importlib.metadata.version(p)
                for p in ("aifactory", "httpx", "starlette", "uvicorn", HTTP)
            },
            "storage": "local BlobStore shared by the orchestrator and the worker service; "
            + (
                "wire placement (inline under 1 KiB, KV files with fsync above)"
                if s.stage_inline is None
                else f"stage payloads inline under {s.stage_inline} B"
            ),
            "state": "SQLiteStore in a temporary folder, result cache off",
            "n": s.n,
            "repeats": s.repeats,
            "warmup": s.warmup,
        },
    }


def render(r: dict[str, Any]) -> str:
    """The report as a readable table."""
    env, rt, ratios = r["environment"], r["raw_roundtrip"], r["ratios"]
    over, per_run, bd = r["per_stage_overhead_us"], r["per_run_ms"], r["breakdown"]
    lines = [
        f"Remote overhead: {r['stages']} no-op stages, orchestrator -> worker service over HTTP",
        f"median of {env['repeats']} x {env['n']} runs after {env['warmup']} warm-up; "
        f"Python {env['python']}, {env['cpu_count']} CPUs",
        f"server: {env['server']}",
        f"storage: {env['storage']}",
        "",
        f"{'raw round trip (1 KB JSON echo)':<36}{rt['median_us']:>10.1f} µs median "
        f"(mean {rt['mean_us']:.1f}, p90 {rt['p90_us']:.1f}, {rt['calls']} calls)",
        "",
        f"{'':<36}{'per run ms':>12}{'overhead µs/stage':>20}",
    ]
    for name in ("plain", "aifactory_embedded", "aifactory_remote"):
        lines.append(f"{name:<36}{per_run[name]:>12.3f}{over.get(name, 0.0):>20.1f}")
    lines += ["", f"a remote stage, {bd['per_stage_us']:.0f} µs over {bd['runs']} runs:"]
    for kind, median in bd["calls_median_us"].items():
        lines.append(
            f"  {kind:<34}{median:>10.1f} µs median ({median / rt['median_us']:.2f}x raw), "
            f"mean {bd['calls_mean_us'][kind]:.1f}"
        )
    lines.append(f"  {'outside the calls':<34}{bd['outside_calls_us']:>10.1f} µs (mean)")
    traffic = r["noop_stage_traffic"]
    lines += [
        "",
        f"a no-op stage over HTTP: {traffic['requests']} requests, {traffic['bytes_sent']:g} B "
        f"sent, {traffic['bytes_received']:g} B received",
        "",
        f"{'by reference':<24}{'requests':>9}{'sent B':>9}{'received B':>12}{'total B':>9}"
        f"{'inline B':>13}",
    ]
    for name, t in r["by_reference"].items():
        inline = f"{t['inline_bytes']:,}" if "inline_bytes" in t else ""
        lines.append(
            f"{name:<24}{t['requests']:>9}{t['bytes_sent']:>9}{t['bytes_received']:>12}"
            f"{t['bytes_total']:>9}{inline:>13}"
        )
        for kind, c in t["calls"].items():
            lines.append(
                f"  {kind:<22}{'':>9}{c['bytes_sent']:>9}{c['bytes_received']:>12}"
                f"  (request body {c['of_which_body']} B)"
            )
    lines += ["", "ratios"]
    lines += [f"  {name:<58}{value:>8.3f}" for name, value in ratios.items()]
    lines += ["targets"]
    for t in r["targets"]:
        verdict = "met" if t["met"] else "MISSED"
        lines.append(f"  {t['name']:<58}{t['value']:>8g} {t['op']} {t['limit']:<5g} {verdict}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--n", type=int, default=200, help="runs per repetition (200)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions, median taken (5)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--server",
        choices=("thread", "process"),
        default="process",
        help="run uvicorn in a child process (default, as a deployment runs a worker service) "
        "or in a thread of this process (sharing the GIL with the orchestrator)",
    )
    placement = parser.add_mutually_exclusive_group()
    placement.add_argument(
        "--stage-inline",
        type=int,
        metavar="BYTES",
        default=EMBEDDED_STAGE_INLINE_BYTES,
        help="keep stage payloads under BYTES inline, both sides (default: "
        f"{EMBEDDED_STAGE_INLINE_BYTES}, what `aifactory serve` and the embedded factory do)",
    )
    placement.add_argument(
        "--wire",
        dest="stage_inline",
        action="store_const",
        const=None,
        help="the seed's wire placement instead: stage payloads inline under 1 KiB, larger "
        "ones as fsync'd KV files",
    )
    args = parser.parse_args(argv)
    if min(args.n, args.repeats) < 1:
        parser.error("--n and --repeats must be at least 1")
    with tempfile.TemporaryDirectory(prefix="aif-remote-bench-") as folder:
        warmup = max(2, args.n // 10)
        s = Settings(args.n, args.repeats, warmup, Path(folder), args.stage_inline, args.server)
        figures = anyio.run(
            measure, s, lambda message: print(f"... {message}", file=sys.stderr, flush=True)
        )
    result = report(figures, s)
    print(json.dumps(result, indent=2) if args.json else render(result), end="\n" * args.json)
    return 1 if args.check and not result["targets_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
