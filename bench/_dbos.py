"""DBOS Transact as a comparison system: the pipeline as a workflow of five `@DBOS.step`s.

The workflow takes the pipeline's dict and passes it through five steps, each doing a stage's
work (`add_payload`); DBOS checkpoints each step's output in its system database before the
next step runs, and the workflow's output at its end. In dbos 3.4, each step checks a
connection out of its pool twice: one transaction reads the workflow's status and any output
already recorded for the step (on SQLite two autocommit SELECTs: `sqlite3` begins only
before a write), the other locks the workflow's row and inserts the step's output. Starting
the workflow writes its status and inputs in one transaction, finishing it its status and
output (one statement on PostgreSQL): per run 12 checkouts (each with SQLAlchemy's pre-ping),
24 statements (23 on PostgreSQL), 7 write transactions.

- `dbos_sqlite`: the system database on SQLite in the run's temporary folder. DBOS sets no
  journal mode or synchronous level of its own (only `BEGIN IMMEDIATE` transactions,
  `busy_timeout` and `foreign_keys`), so SQLite's defaults (rollback journal, FULL) would
  apply; every connection its engine opens comes from `_WalNormal`, which switches it to
  WAL and `synchronous=NORMAL` (aifactory's store's durability) and checks that it took.
  After the runs, a connection checked out of DBOS's own engine is asked again.
- `dbos_postgres`: the system database in the PostgreSQL database `--state` names, in a
  schema of its own (`dbos_system_schema`, a fresh name per measurement) that DBOS creates
  and the benchmark drops afterwards, so repeated runs leave nothing behind.

Sequentially, the workflow and its steps are plain functions, called directly (DBOS runs
them in the caller's thread). With `--concurrency`, they are coroutines awaited on the
benchmark's event loop: DBOS's async API, which runs each system-database call in a thread
(`asyncio.to_thread`, on its executor) and awaits it.

Each measurement launches DBOS (a process-wide singleton with background threads: queue,
scheduler, notification listener, background jobs, an event loop) and destroys it, registry
included, at its end, so the next one starts clean and no thread outlives it. `dbos` is
imported only here, and only when a DBOS system is measured: it comes with the `bench` extra.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio
from _noop import STAGES, add_payload, plain_pipeline
from _timing import Runs, time_sync

if TYPE_CHECKING:
    from dbos import DBOS, WorkflowHandle

__all__ = [
    "DBOS_CONCURRENT",
    "DBOS_NOTES",
    "DBOS_POSTGRES",
    "DBOS_SEQUENTIAL",
    "dbos_concurrent",
    "dbos_sequential",
    "dbos_version",
    "is_postgres_url",
    "redact_url",
]

DBOS_SEQUENTIAL = ("dbos_sqlite", "dbos_postgres")
DBOS_CONCURRENT = ("dbos_sqlite_async", "dbos_postgres_async")
#: The systems that need `--state postgresql://...`.
DBOS_POSTGRES = ("dbos_postgres", "dbos_postgres_async")
DBOS_NOTES = {
    "dbos_sqlite": "DBOS workflow of 5 steps, SQLite system DB (WAL, synchronous=NORMAL)",
    "dbos_postgres": "DBOS workflow of 5 steps, PostgreSQL system DB (--state), own schema",
    "dbos_sqlite_async": "async workflow and steps; each DB call in a thread; SQLite (WAL, NORMAL)",
    "dbos_postgres_async": "async workflow and steps; each DB call in a thread; PostgreSQL",
}
_APP = "aif-bench"
_WORKFLOW = "aif_bench_pipeline"

Throughput = Callable[[Callable[[], Awaitable[object]]], Awaitable[list[float]]]


def dbos_version() -> str | None:
    """The installed DBOS Transact's version, or `None` without it (the `bench` extra)."""
    try:
        return importlib.metadata.version("dbos")
    except importlib.metadata.PackageNotFoundError:
        return None


def is_postgres_url(url: str) -> bool:
    """Whether `url` names a PostgreSQL database (`postgresql://`, `postgresql+driver://`)."""
    scheme = urlsplit(url).scheme
    return scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+")


def redact_url(url: str) -> str:
    """`url` with its password, if any, replaced by `***` (for reports)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    netloc = f"{parts.username or ''}:***@{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


# -- where DBOS keeps its state ---------------------------------------------------------------


class _WalNormal(sqlite3.Connection):
    """A `sqlite3` connection in WAL mode with `synchronous=NORMAL`, or an error.

    Handed to DBOS's engine as the connection factory (`connect_args`), so every connection
    its pool opens is set up before DBOS's own connect hook (which leaves both alone) runs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mode = self.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        self.execute("PRAGMA synchronous=NORMAL")
        level = self.execute("PRAGMA synchronous").fetchone()[0]
        if (mode, level) != ("wal", 1):
            raise RuntimeError(
                f"DBOS's SQLite connection: journal_mode={mode}, synchronous={level}"
            )


@dataclass(frozen=True)
class _Database:
    """DBOS's system database for one measurement: its URL, schema and engine options."""

    url: str
    schema: str | None = None
    engine_kwargs: dict[str, Any] | None = None


@contextlib.contextmanager
def _database(system: str, folder: Path, state: str | None) -> Iterator[_Database]:
    """The system database `system` uses; a PostgreSQL schema is dropped at the end."""
    if not system.startswith("dbos_postgres"):
        yield _Database(
            f"sqlite:///{folder / 'dbos.sqlite3'}",
            engine_kwargs={"connect_args": {"factory": _WalNormal}},
        )
        return
    if state is None or not is_postgres_url(state):
        raise ValueError(f"{system} needs --state postgresql://...")
    schema = f"aif_bench_dbos_{uuid.uuid4().hex[:12]}"
    try:
        yield _Database(state, schema=schema)
    finally:
        _drop_schema(state, schema)


def _drop_schema(url: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg"), poolclass=sa.NullPool
    )
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        engine.dispose()


# -- the workflow -----------------------------------------------------------------------------


class _Pipeline:
    """A launched DBOS with the benchmark's workflow registered, sync or async."""

    def __init__(self, dbos: DBOS, workflow: Callable[..., Any], database: _Database) -> None:
        self._dbos = dbos
        self._workflow = workflow
        self._database = database

    def run(self) -> str:
        """One execution of the (sync) workflow under a new id; returns the id."""
        from dbos import SetWorkflowID

        workflow_id = uuid.uuid4().hex
        with SetWorkflowID(workflow_id):
            self._workflow({})
        return workflow_id

    async def arun(self) -> str:
        """One execution of the (async) workflow under a new id, awaited; returns the id."""
        from dbos import SetWorkflowID

        workflow_id = uuid.uuid4().hex
        with SetWorkflowID(workflow_id):
            await self._workflow({})
        return workflow_id

    def verify(self, workflow_id: str) -> None:
        """Read the execution back from DBOS's system database and check it did the work.

        Its status, its recorded output, and its five steps' recorded outputs (the last one
        the pipeline's result); on SQLite, the journal mode and synchronous level of a
        connection from DBOS's engine. Raises `RuntimeError` otherwise.
        """
        from dbos import DBOS

        expected = plain_pipeline({})
        handle: WorkflowHandle[dict[str, Any]] = DBOS.retrieve_workflow(workflow_id)
        status = handle.get_status().status
        output = handle.get_result()
        steps = DBOS.list_workflow_steps(workflow_id)
        names = [step["function_name"] for step in steps]
        if status != "SUCCESS" or output != expected:
            raise RuntimeError(f"DBOS workflow {workflow_id}: {status}, {output!r:.200}")
        if names != [f"s{i}" for i in range(1, STAGES + 1)] or steps[-1]["output"] != expected:
            raise RuntimeError(f"DBOS workflow {workflow_id} recorded steps {names}")
        if self._database.url.startswith("sqlite"):
            self._check_sqlite()

    def _check_sqlite(self) -> None:
        # DBOS has no public handle on its engine; the instance's system database holds it.
        engine = self._dbos._sys_db.engine
        with engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            level = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            ours = isinstance(conn.connection.dbapi_connection, _WalNormal)
        if (mode, level, ours) != ("wal", 1, True):
            raise RuntimeError(
                f"DBOS's SQLite: journal_mode={mode}, synchronous={level}, our factory: {ours}"
            )


def _register(*, asynchronous: bool) -> Callable[..., Any]:
    """Register the 5-step workflow with DBOS (before launch); return it."""
    from dbos import DBOS

    def sync_step(stage: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def step(data: dict[str, Any]) -> dict[str, Any]:
            return add_payload(data, stage)

        return DBOS.step(name=f"s{stage}")(step)

    def async_step(stage: int) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
        async def step(data: dict[str, Any]) -> dict[str, Any]:
            return add_payload(data, stage)

        return DBOS.step(name=f"s{stage}")(step)

    if asynchronous:
        async_steps = [async_step(stage) for stage in range(1, STAGES + 1)]

        async def async_pipeline(data: dict[str, Any]) -> dict[str, Any]:
            for step in async_steps:
                data = await step(data)
            return data

        return DBOS.workflow(name=_WORKFLOW)(async_pipeline)
    sync_steps = [sync_step(stage) for stage in range(1, STAGES + 1)]

    def pipeline(data: dict[str, Any]) -> dict[str, Any]:
        for step in sync_steps:
            data = step(data)
        return data

    return DBOS.workflow(name=_WORKFLOW)(pipeline)


@contextlib.contextmanager
def _launched(
    system: str, folder: Path, state: str | None, *, asynchronous: bool
) -> Iterator[_Pipeline]:
    """DBOS launched on `system`'s database with the workflow registered; destroyed after."""
    from dbos import DBOS, DBOSConfig

    with _database(system, folder, state) as database:
        workflow = _register(asynchronous=asynchronous)
        config: DBOSConfig = {
            "name": _APP,
            "system_database_url": database.url,
            "log_level": "WARNING",
        }
        if database.schema is not None:
            config["dbos_system_schema"] = database.schema
        if database.engine_kwargs is not None:
            config["db_engine_kwargs"] = database.engine_kwargs
        try:
            dbos = DBOS(config=config)
            DBOS.launch()
            yield _Pipeline(dbos, workflow, database)
        finally:
            # Stops and joins its threads, disposes of its engine, forgets the registrations.
            DBOS.destroy(destroy_registry=True)


# -- the measurements -------------------------------------------------------------------------


def dbos_sequential(system: str, s: Runs, folder: Path, state: str | None) -> list[float]:
    """Seconds per run of the sync workflow, one figure per repetition; then checked."""
    with _launched(system, folder, state, asynchronous=False) as pipeline:
        figures = time_sync(pipeline.run, s)
        pipeline.verify(pipeline.run())
        return figures


def dbos_concurrent(
    system: str, folder: Path, state: str | None, throughput: Throughput
) -> list[float]:
    """Executions per second of the async workflow, as `throughput` runs it; then checked."""
    system = system.removesuffix("_async")
    with _launched(system, folder, state, asynchronous=True) as pipeline:

        async def main() -> tuple[list[float], str]:
            figures = await throughput(pipeline.arun)
            return figures, await pipeline.arun()

        figures, last = anyio.run(main)
        pipeline.verify(last)  # outside the event loop: DBOS's sync API
        return figures
