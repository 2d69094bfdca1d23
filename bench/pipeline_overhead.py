"""Per-stage overhead of aifactory's orchestrator, against plain calls, SQLite and LangGraph.

A linear pipeline of five no-op stages (each adds a ~1 KB string to the dict it passes on)
runs `--n` times per repetition, `--repeats` times, after a warm-up; the median time per run
is reported, and the per-stage overhead is `(per run - plain per run) / 5`:

- `plain`: the five stages as plain function calls (the baseline);
- `sqlite_commit`: plus one 1 KB row committed per stage in a WAL-mode SQLite file
  (synchronous=NORMAL): the durable floor;
- `durable_floor`: the rows aifactory's store writes for the pipeline (same schema, statements
  and transactions) and the encoding its worker protocol needs, by hand with `sqlite3` and
  nothing else: what the design costs before any orchestration (see `_floor.py`);
- `log_floor`: the least writing the issue's requirements allow, by hand: one append-only
  event log, one row per event, the output in its stage's row, one transaction per stage;
- `aifactory_embedded`: the orchestrator with durable checkpoints (SQLite state store, local
  blob store, the embedded factory's placement: stage payloads inline up to 64 KiB) and
  in-process worker transports, result cache off;
- `aifactory_embedded_metrics_off`: `aifactory_embedded` (whose Prometheus metrics are on,
  as the embedded factory's are by default) with them off, reported side by side;
- `aifactory_embedded_tracing` (with the `otel` extra): `aifactory_embedded` making
  OpenTelemetry spans too (execution, stage attempt, handshake, process, acknowledge), batched
  to an exporter that drops them;
- `aifactory_embedded_wire`: the same with the seed's wire placement (inline under 1 KiB):
  the 1-5 KB stage outputs become fsync'd KV files;
- `aifactory_embedded_cached`: result cache on and identical input: every stage is a hit;
- `langgraph_sqlite`, `langgraph_sqlite_normal`, `langgraph_memory` (with the `bench`
  extra): a 5-node `StateGraph` with `SqliteSaver` (its defaults; then with synchronous=NORMAL
  like aifactory's store) or `InMemorySaver`, one new thread per run;
- `dbos_sqlite` (with the `bench` extra): a DBOS Transact workflow of five `@DBOS.step`s, its
  system database on SQLite in WAL mode with synchronous=NORMAL; `dbos_postgres` the same on
  the PostgreSQL database `--state` names, in a schema of its own (see `_dbos.py`).

Then `--concurrency` executions at a time on one event loop: executions per second of
aifactory, of LangGraph with `AsyncSqliteSaver` (and with `InMemorySaver`) and of DBOS's
async workflows (`dbos_sqlite_async`, `dbos_postgres_async`).

    python bench/pipeline_overhead.py [--json] [--n N] [--repeats R] [--concurrency C] [--check]
    python bench/pipeline_overhead.py --state postgresql://USER@HOST:PORT/DB   # + PostgreSQL
    python bench/pipeline_overhead.py --profile [SYSTEM]   # cProfile, µs per stage

Prints a table (with `--json`, one JSON object on stdout; progress goes to stderr) and exits 0;
`--check` exits 1 when a measured target is missed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
from _dbos import (
    DBOS_CONCURRENT,
    DBOS_NOTES,
    DBOS_POSTGRES,
    DBOS_SEQUENTIAL,
    dbos_concurrent,
    dbos_sequential,
    dbos_version,
    is_postgres_url,
    redact_url,
)
from _floor import durable_floor_run, log_floor_run
from _noop import (
    STAGES,
    add_payload,
    embedded_orchestrator,
    langgraph_pipeline,
    noop_template,
    plain_pipeline,
)
from _pg import pg_schema
from _report import informative_ratios, profile_table, render, targets
from _timing import time_async, time_sync

from aifactory.orchestrator import Orchestrator

AIFACTORY = (
    "aifactory_embedded",
    "aifactory_embedded_metrics_off",
    "aifactory_embedded_tracing",
    "aifactory_embedded_wire",
    "aifactory_embedded_cached",
    "aifactory_postgres",
)
LANGGRAPH = ("langgraph_sqlite", "langgraph_sqlite_normal", "langgraph_memory")
SEQUENTIAL = (
    "plain",
    "sqlite_commit",
    "log_floor",
    "durable_floor",
    *AIFACTORY,
    *LANGGRAPH,
    *DBOS_SEQUENTIAL,
)
CONCURRENT = (
    "aifactory_embedded",
    "aifactory_postgres",
    "aifactory_embedded_wire",
    "langgraph_sqlite_async",
    "langgraph_memory_async",
    *DBOS_CONCURRENT,
)
NOTES = {
    "log_floor": "the least writing the issue allows: an event log, by hand (bench/_floor.py)",
    "durable_floor": "aifactory's rows and encoding by hand, no orchestrator (bench/_floor.py)",
    "aifactory_embedded_wire": "wire placement: inline < 1 KiB, stage outputs as KV files",
    "aifactory_embedded_metrics_off": "aifactory_embedded without its Prometheus metrics",
    "aifactory_embedded_tracing": "aifactory_embedded with OpenTelemetry spans (SDK, batched)",
    "aifactory_embedded_cached": "result cache ON, identical input: every stage is a cache hit",
    "langgraph_sqlite": "SqliteSaver defaults (WAL, synchronous=FULL)",
    "langgraph_sqlite_normal": "SqliteSaver with synchronous=NORMAL, like aifactory's store",
    "langgraph_sqlite_async": "AsyncSqliteSaver (aiosqlite), async nodes",
    "langgraph_memory_async": "InMemorySaver, async nodes",
    **DBOS_NOTES,
}
#: Statements per stage, as the store counted them in one run of each aifactory system.
STATEMENTS: dict[str, float] = {}
ROUND_TRIPS: dict[str, float] = {}
NEEDS_EXTRA = "needs the bench extra: pip install 'aifactory[bench]'"
NEEDS_STATE = "needs a PostgreSQL database: --state postgresql://..."
NEEDS_OTEL = "needs the otel extra: pip install 'aifactory[otel]'"


@dataclass(frozen=True)
class Settings:
    """How much to measure, and where temporary files go."""

    n: int
    repeats: int
    warmup: int
    concurrency: int
    folder: Path
    #: `--state`: a PostgreSQL URL for the systems that store there (DBOS now; aifactory's
    #: PostgreSQL store later), or `None`.
    state: str | None = None


# -- timing -----------------------------------------------------------------------------------


async def throughput(run: Callable[[], Awaitable[object]], s: Settings) -> list[float]:
    """Runs per second with `s.concurrency` always in flight, one figure per repetition.

    Each repetition runs `max(n, concurrency)` pipelines; one round of `concurrency` warms up.
    """

    async def batch(count: int) -> float:
        left = count

        async def lane() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await run()

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(s.concurrency):
                tg.start_soon(lane)
        return count / (time.perf_counter() - start)

    await batch(s.concurrency)
    figures = []
    for _ in range(s.repeats):
        gc.collect()
        figures.append(await batch(max(s.n, s.concurrency)))
    return figures


# -- the systems ------------------------------------------------------------------------------


def plain_run() -> None:
    """One pipeline as plain calls."""
    data: dict[str, Any] = {}
    for stage in range(1, STAGES + 1):
        data = add_payload(data, stage)


@contextmanager
def sqlite_commit_run(folder: Path) -> Iterator[Callable[[], None]]:
    """One pipeline committing a 1 KB row per stage (WAL, synchronous=NORMAL)."""
    db = sqlite3.connect(folder / "floor.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, run TEXT, stage INT, payload TEXT)")

    def run() -> None:
        data: dict[str, Any] = {}
        run_id = uuid.uuid4().hex
        for stage in range(1, STAGES + 1):
            data = add_payload(data, stage)
            # Autocommit: each INSERT is its own transaction and commit.
            db.execute(
                "INSERT INTO rows (run, stage, payload) VALUES (?, ?, ?)",
                (run_id, stage, data[f"s{stage}"]),
            )

    try:
        yield run
    finally:
        db.close()


@contextmanager
def aifactory(
    system: str, folder: Path, max_workers: int, state: str | None = None
) -> Iterator[Orchestrator]:
    """The orchestrator `system` names (its placement policy, its store), under `folder`;
    `aifactory_postgres` keeps its state in a schema of its own in `state`, dropped after."""
    if system == "aifactory_postgres":
        assert state is not None
        with (
            pg_schema(state) as url,
            embedded_orchestrator(folder, max_workers=max_workers, state=url) as orchestrator,
        ):
            yield orchestrator
        return
    with _embedded(system, folder, max_workers) as orchestrator:
        yield orchestrator


def _embedded(system: str, folder: Path, max_workers: int) -> AbstractContextManager[Orchestrator]:
    if system == "aifactory_embedded_wire":
        return embedded_orchestrator(folder, stage_inline_max_bytes=None, max_workers=max_workers)
    if system == "aifactory_embedded_metrics_off":
        return embedded_orchestrator(folder, max_workers=max_workers, metrics=False)
    if system == "aifactory_embedded_tracing":
        return embedded_orchestrator(folder, max_workers=max_workers, tracing=True)
    return embedded_orchestrator(folder, max_workers=max_workers)


def aifactory_run(orchestrator: Orchestrator, *, cache: bool) -> Callable[[], Awaitable[str]]:
    """One execution of the no-op template, created and run to its end; returns its id."""
    template = noop_template()
    resources = {} if cache else {"cache": False}

    async def run() -> str:
        execution = await orchestrator.create(template, {"data": {}}, resources=resources)
        final = await orchestrator.run(execution.id)
        if final.error is not None:
            raise RuntimeError(f"the benchmark pipeline failed: {final.error}")
        return execution.id

    return run


async def verify_aifactory(orchestrator: Orchestrator, execution_id: str, *, cached: bool) -> None:
    """Check that an execution did the pipeline's work (and hit the cache when it should).

    Raises `RuntimeError` otherwise: a benchmark of the wrong thing is worse than none.
    """
    runs = {r.stage_id: r for r in await orchestrator.store.get_stage_runs(execution_id)}
    last = runs[f"s{STAGES}"].output_ref
    output = json.loads(orchestrator.blobs.get(last)) if last is not None else None
    if output != plain_pipeline({}):
        raise RuntimeError(f"execution {execution_id} produced {output!r:.200}")
    methods = {str(r.summary.get("method")) for r in runs.values()}
    if methods != ({"cache:noop"} if cached else {"noop"}):
        raise RuntimeError(f"execution {execution_id}: unexpected stage methods {methods}")


def langgraph_run(app: Any) -> Callable[[], object]:
    """One `invoke` of the compiled graph on a new thread."""

    def run() -> None:
        app.invoke({"data": {}}, {"configurable": {"thread_id": uuid.uuid4().hex}})

    return run


def langgraph_arun(app: Any) -> Callable[[], Awaitable[object]]:
    """One `ainvoke` of the compiled graph on a new thread."""

    async def run() -> None:
        await app.ainvoke({"data": {}}, {"configurable": {"thread_id": uuid.uuid4().hex}})

    return run


def langgraph_version() -> str | None:
    """The installed LangGraph's version, or `None` without the whole `bench` extra."""
    try:
        importlib.metadata.version("langgraph-checkpoint-sqlite")
        importlib.metadata.version("aiosqlite")
        return importlib.metadata.version("langgraph")
    except importlib.metadata.PackageNotFoundError:
        return None


def measure_sequential(system: str, s: Settings) -> list[float]:
    """Seconds per run of `system`, one figure per repetition."""
    folder = Path(tempfile.mkdtemp(prefix=f"{system}-", dir=s.folder))
    if system in DBOS_SEQUENTIAL:
        return dbos_sequential(system, s, folder, s.state)
    if system == "plain":
        return time_sync(plain_run, s)
    if system == "sqlite_commit":
        with sqlite_commit_run(folder) as run:
            return time_sync(run, s)
    if system in ("durable_floor", "log_floor"):
        floor = durable_floor_run if system == "durable_floor" else log_floor_run
        with floor(folder) as floor_run:
            figures = time_sync(floor_run, s)
            output = floor_run()  # the last stage's output, as the floor stored it
            if {k: v for k, v in output.items() if k != "run"} != plain_pipeline({}):
                raise RuntimeError(f"{system} stored {output!r:.200}")
            return figures
    if system in AIFACTORY:

        async def main() -> list[float]:
            with aifactory(system, folder, max_workers=4, state=s.state) as orchestrator:
                cache = system == "aifactory_embedded_cached"
                run = aifactory_run(orchestrator, cache=cache)
                figures = await time_async(run, s)
                store = orchestrator.store
                before = store.statements, store.round_trips  # type: ignore[attr-defined]
                await verify_aifactory(orchestrator, await run(), cached=cache)
                STATEMENTS[system] = (store.statements - before[0]) / STAGES  # type: ignore[attr-defined]
                if system == "aifactory_postgres":
                    ROUND_TRIPS[system] = (store.round_trips - before[1]) / STAGES  # type: ignore[attr-defined]
                return figures

        return anyio.run(main)
    if system == "langgraph_memory":
        from langgraph.checkpoint.memory import InMemorySaver

        return time_sync(langgraph_run(langgraph_pipeline(InMemorySaver(), asynchronous=False)), s)
    from langgraph.checkpoint.sqlite import SqliteSaver

    db = sqlite3.connect(folder / "langgraph.sqlite3", check_same_thread=False)
    try:
        saver = SqliteSaver(db)
        saver.setup()  # WAL; SQLite's default synchronous mode (FULL) stays unless changed
        if system == "langgraph_sqlite_normal":
            db.execute("PRAGMA synchronous=NORMAL")
        return time_sync(langgraph_run(langgraph_pipeline(saver, asynchronous=False)), s)
    finally:
        db.close()


def measure_concurrent(system: str, s: Settings) -> list[float]:
    """Executions per second of `system` at `s.concurrency`, one figure per repetition."""
    folder = Path(tempfile.mkdtemp(prefix=f"{system}-", dir=s.folder))
    if system in DBOS_CONCURRENT:
        return dbos_concurrent(system, folder, s.state, lambda run: throughput(run, s))

    async def main() -> list[float]:
        if system in AIFACTORY:
            with aifactory(
                system, folder, max_workers=s.concurrency, state=s.state
            ) as orchestrator:
                run = aifactory_run(orchestrator, cache=False)
                figures = await throughput(run, s)
                await verify_aifactory(orchestrator, await run(), cached=False)
                return figures
        if system == "langgraph_memory_async":
            from langgraph.checkpoint.memory import InMemorySaver

            app = langgraph_pipeline(InMemorySaver(), asynchronous=True)
            return await throughput(langgraph_arun(app), s)
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with aiosqlite.connect(folder / "langgraph.sqlite3") as db:
            saver = AsyncSqliteSaver(db)
            await saver.setup()
            return await throughput(langgraph_arun(langgraph_pipeline(saver, asynchronous=True)), s)

    return anyio.run(main)


# -- the benchmark ----------------------------------------------------------------------------


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def metrics_cost(systems: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """What the orchestrator's Prometheus metrics (on by default) cost per stage, beside the
    same runs with them off: the difference, and the ratio of the per-stage times; and the
    same for OpenTelemetry spans on top of the metrics, when measured."""
    on, off = systems.get("aifactory_embedded"), systems.get("aifactory_embedded_metrics_off")
    if on is None or off is None:
        return None
    traced = systems.get("aifactory_embedded_tracing")
    return {
        "per_stage_us_on": round(on["per_run_ms"] * 1e3 / STAGES, 2),
        "per_stage_us_off": round(off["per_run_ms"] * 1e3 / STAGES, 2),
        "cost_per_stage_us": round((on["per_run_ms"] - off["per_run_ms"]) * 1e3 / STAGES, 2),
        "ratio_on_to_off": round(on["per_run_ms"] / off["per_run_ms"], 4),
        **(
            {}
            if traced is None
            else {
                "per_stage_us_tracing": round(traced["per_run_ms"] * 1e3 / STAGES, 2),
                "tracing_cost_per_stage_us": round(
                    (traced["per_run_ms"] - on["per_run_ms"]) * 1e3 / STAGES, 2
                ),
                "ratio_tracing_to_off": round(traced["per_run_ms"] / off["per_run_ms"], 4),
            }
        ),
    }


def run_benchmark(
    s: Settings, *, only: set[str] | None = None, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Measure the available systems (`only` some, plus `plain`); return a JSON-ready report."""
    version = langgraph_version()
    dbos = dbos_version()
    skipped: dict[str, str] = {}

    def wanted(system: str) -> bool:
        if only is not None and system != "plain" and system not in only:
            return False
        if (system.startswith("langgraph") and version is None) or (
            system.startswith("dbos") and dbos is None
        ):
            skipped[system] = NEEDS_EXTRA
            return False
        if (system in DBOS_POSTGRES or system == "aifactory_postgres") and s.state is None:
            skipped[system] = NEEDS_STATE
            return False
        if system == "aifactory_embedded_tracing" and not _has("opentelemetry.sdk"):
            skipped[system] = NEEDS_OTEL
            return False
        return True

    sequential: dict[str, list[float]] = {}
    for system in filter(wanted, SEQUENTIAL):
        progress(f"sequential: {system}")
        sequential[system] = measure_sequential(system, s)
    plain = statistics.median(sequential["plain"])
    systems: dict[str, dict[str, Any]] = {
        name: {
            "per_run_ms": round(statistics.median(figures) * 1e3, 6),
            "per_stage_overhead_us": round((statistics.median(figures) - plain) / STAGES * 1e6, 2),
            "per_run_ms_repeats": [round(f * 1e3, 6) for f in figures],
            **({"note": NOTES[name]} if name in NOTES else {}),
        }
        for name, figures in sequential.items()
    }
    concurrent: dict[str, dict[str, Any]] = {}
    for system in filter(wanted, CONCURRENT):
        progress(f"concurrent ({s.concurrency} in flight): {system}")
        figures = measure_concurrent(system, s)
        concurrent[system] = {
            "executions_per_s": round(statistics.median(figures), 2),
            "executions_per_s_repeats": [round(f, 2) for f in figures],
            **({"note": NOTES[system]} if system in NOTES else {}),
        }
    overhead = {name: m["per_stage_overhead_us"] for name, m in systems.items()}
    rates = {name: m["executions_per_s"] for name, m in concurrent.items()}
    checked = targets(overhead, rates, s.concurrency)
    measured = [t.met for t in checked if t.met is not None]
    return {
        "benchmark": "pipeline_overhead",
        "stages": STAGES,
        "payload_bytes_per_stage": 1000,
        "environment": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "sqlite": sqlite3.sqlite_version,
            "aifactory": importlib.metadata.version("aifactory"),
            "langgraph": version,
            "dbos": dbos,
            "state": None if s.state is None else redact_url(s.state),
            "n": s.n,
            "repeats": s.repeats,
            "warmup": s.warmup,
            "concurrency": s.concurrency,
        },
        "sequential": systems,
        "per_stage_overhead_us": overhead,
        "per_run_ms": {name: m["per_run_ms"] for name, m in systems.items()},
        "concurrent": {"concurrency": s.concurrency, "systems": concurrent},
        "executions_per_s": rates,
        "targets": [asdict(t) for t in checked],
        "targets_met": all(measured) if measured else None,
        "ratios_informative": informative_ratios(overhead, rates),
        "metrics": metrics_cost(systems),
        "skipped": skipped,
        # Statements per stage of one run (each a round trip on PostgreSQL), counted by the
        # store, a verifying read of the stage runs included.
        "statements_per_stage": {k: round(v, 2) for k, v in STATEMENTS.items()},
        "round_trips_per_stage": {k: round(v, 2) for k, v in ROUND_TRIPS.items()},
    }


def profile(system: str, s: Settings, top: int = 35) -> str:
    """cProfile `system`'s sequential runs; the top functions by cumulative time per stage."""
    folder = Path(tempfile.mkdtemp(prefix="profile-", dir=s.folder))
    profiler = cProfile.Profile()

    async def main() -> None:
        with aifactory(system, folder, max_workers=4, state=s.state) as orchestrator:
            run = aifactory_run(orchestrator, cache=system == "aifactory_embedded_cached")
            for _ in range(s.warmup):
                await run()
            profiler.enable()
            for _ in range(s.n):
                await run()
            profiler.disable()

    anyio.run(main)
    return profile_table(profiler, s.n * STAGES, f"cProfile of {system}, {s.n} runs", top)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--n", type=int, default=200, help="runs per repetition (200)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions, median taken (5)")
    parser.add_argument("--concurrency", type=int, default=50, help="executions in flight (50)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--state",
        metavar="postgresql://...",
        help="a PostgreSQL database for the systems that store there (dbos_postgres); "
        "each measurement uses a schema of its own and drops it",
    )
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        metavar="SYSTEM[,SYSTEM]",
        help=f"measure only these (and plain): {', '.join((*SEQUENTIAL, *CONCURRENT))}",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="aifactory_embedded",
        choices=AIFACTORY,
        help="instead of the benchmark, cProfile one aifactory system (default: embedded)",
    )
    args = parser.parse_args(argv)
    if min(args.n, args.repeats, args.concurrency) < 1:
        parser.error("--n, --repeats and --concurrency must be at least 1")
    if args.state is not None and not is_postgres_url(args.state):
        parser.error("--state must be a PostgreSQL URL: postgresql://USER@HOST:PORT/DATABASE")
    if args.only and not args.only <= {*SEQUENTIAL, *CONCURRENT}:
        parser.error(
            f"unknown systems: {', '.join(sorted(args.only - {*SEQUENTIAL, *CONCURRENT}))}"
        )
    with tempfile.TemporaryDirectory(prefix="aif-bench-") as folder:
        s = Settings(
            args.n, args.repeats, max(2, args.n // 10), args.concurrency, Path(folder), args.state
        )
        if args.profile:
            print(profile(args.profile, s), end="")
            return 0
        report = run_benchmark(
            s, only=args.only, progress=lambda message: print(f"... {message}", file=sys.stderr)
        )
    print(json.dumps(report, indent=2) if args.json else render(report), end="\n" * args.json)
    return 1 if args.check and report["targets_met"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
