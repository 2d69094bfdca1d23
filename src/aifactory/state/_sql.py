"""`Database`: one connection to the state database, its transactions and generic row access.

This is the synchronous layer under the async `Store`: every method here blocks, and the
store runs it on a thread of its own (`_async.SQLStore`), never on the event loop. The SQL is
written once, in a dialect SQLite and PostgreSQL share (`?` and `:name` placeholders,
`INSERT ... ON CONFLICT`, `RETURNING`); a backend (`_sqlite`, `_postgres`) subclasses this
to open the connection, translate placeholders and map its driver's errors.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any, Protocol, TypeVar

from .._exceptions import AIFactoryError, NotFoundError
from . import _tables as t
from ._migrations import pending

__all__ = ["Cursor", "Database"]

T = TypeVar("T")


class Cursor(Protocol):
    """What the records need of a driver's cursor (sqlite3's and psycopg's both fit)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Database:
    """One connection and the generic row access the records are written with.

    Subclasses implement `_run` (one statement), `_run_many`, `_begin`, and `close`. A
    connection is used by one thread at a time (the re-entrant lock sees to it).
    """

    #: `"sqlite"` or `"postgresql"`: the few statements that differ ask.
    dialect: str = ""

    def __init__(self, label: str) -> None:
        self.label = label
        self._lock = threading.RLock()
        self._depth = 0
        self._savepoints = 0
        # Generated INSERT/UPDATE statements, by table and columns: building them is most of
        # the Python cost of a small write.
        self._sql: dict[tuple[str, ...], str] = {}
        # What the current transaction has written, by the identity of the object written
        # (see `_payloads`); forgotten when the transaction or a savepoint in it rolls back.
        self._written: dict[int, tuple[object, Any]] = {}
        # Recently stored templates and their JSON text, by identity (see `add_execution`).
        self._templates: list[tuple[object, str]] = []
        # Inside `pipeline()`: the fenced statements whose row counts are checked at its end.
        self._fences: list[tuple[Cursor, Callable[[], AIFactoryError]]] | None = None
        #: Statements run on this connection, for tests and benchmarks.
        self.statements = 0
        #: Waits for the database server's answer (PostgreSQL; SQLite, in process, has none).
        self.round_trips = 0

    # -- what a backend provides ----------------------------------------------------------

    def _run(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> Cursor:
        """Execute one statement; driver errors become `ConflictError`/`StorageError`."""
        raise NotImplementedError

    def _run_many(self, sql: str, rows: Sequence[Any]) -> None:
        raise NotImplementedError

    def _begin(self) -> None:
        """Start a write transaction (SQLite: `BEGIN IMMEDIATE`, taking the write lock)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    def _has_schema(self) -> bool:
        """Whether the database has the `meta` table (is not empty)."""
        raise NotImplementedError

    def _apply_script(self, script: str) -> None:
        """Run a migration script inside the migrating transaction."""
        raise NotImplementedError

    def _lock_schema(self) -> None:
        """Inside a transaction: keep other processes from migrating until it ends (SQLite's
        `BEGIN IMMEDIATE` does already)."""

    # -- schema ----------------------------------------------------------------------------

    #: The folder of this backend's migrations (`migrations/<name>/`).
    migrations: str = ""

    def migrate(self) -> int:
        """Bring the schema up to date; returns the version it is at.

        Each missing migration runs with its version bump in one transaction, one process at
        a time. Raises `StorageError` if the database was written by a newer aifactory.
        """
        current = self.schema_version()
        for migration in pending(self.migrations, current, self.label):
            with self.transaction():
                self._lock_schema()
                if self.schema_version() >= migration.version:
                    continue  # another process got there first
                self._apply_script(migration.sql)
                self._execute(
                    "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (str(migration.version),),
                )
        return self.schema_version()

    def schema_version(self) -> int:
        """The version the schema is at (0: empty database)."""
        if not self._has_schema():
            return 0
        row = self._execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return 0 if row is None else int(row[0])

    # -- transactions ----------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on this connection."""
        return self._depth > 0

    def transaction(self) -> AbstractContextManager[None]:
        """Run the block as one atomic transaction (joins an enclosing one)."""
        return _Transaction(self)

    def _commit(self) -> None:
        self.statements += 1
        self._run("COMMIT", ())

    def _rollback(self) -> None:
        self._run("ROLLBACK", ())

    def _quiet_rollback(self) -> None:
        with contextlib.suppress(Exception):  # the transaction is gone either way
            self._rollback()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: undo only this block's writes if it raises."""
        with self._lock:
            if self._depth == 0:
                raise RuntimeError("a savepoint needs an enclosing transaction")
            self._savepoints += 1
            name = f"sp{self._savepoints}"
            self._mark(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                self._written.clear()
                self._undo_savepoint(name)
                raise
            finally:
                self._savepoints -= 1
            self._mark(f"RELEASE SAVEPOINT {name}")

    def _mark(self, sql: str) -> None:
        """Run a transaction-control statement that answers nothing (a backend may send it
        along with the next statement)."""
        self._execute(sql)

    def _undo_savepoint(self, name: str) -> None:
        self._mark(f"ROLLBACK TO SAVEPOINT {name}")
        self._mark(f"RELEASE SAVEPOINT {name}")

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Inside a transaction: send the block's statements without waiting for each one's
        answer (PostgreSQL's pipeline mode; on SQLite, in process, nothing changes).

        The block's statements must not read what they return; what they must have changed
        is checked with `_fence`, at the latest when the block ends, so before the
        transaction commits. Raises the first failed fence's error.
        """
        yield

    def _fence(self, cursor: Cursor, error: Callable[[], AIFactoryError]) -> None:
        """`cursor`'s statement must have changed a row, else `error()` is raised: now, or
        inside `pipeline()`, when its answers are in."""
        if self._fences is not None:
            self._fences.append((cursor, error))
        elif cursor.rowcount < 1:
            raise error()

    def _check_fences(self, fences: Sequence[tuple[Cursor, Callable[[], AIFactoryError]]]) -> None:
        for cursor, error in fences:
            if cursor.rowcount < 1:
                raise error()

    # -- generic row access ----------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        with self._lock:
            self.statements += 1
            return self._run(sql, params)

    def _executemany(
        self, sql: str, rows: Sequence[Sequence[Any]] | Sequence[dict[str, Any]]
    ) -> None:
        with self._lock:
            self.statements += 1
            self._run_many(sql, rows)

    def _insert_sql(self, table: t.Table[Any], row: dict[str, Any]) -> str:
        key = ("insert", table.name, *row)
        sql = self._sql.get(key)
        if sql is None:
            marks = ", ".join(f":{c}" for c in row)
            sql = f"INSERT INTO {table.name} ({', '.join(row)}) VALUES ({marks})"  # noqa: S608
            self._sql[key] = sql
        return sql

    def _insert_row(self, table: t.Table[Any], row: dict[str, Any]) -> None:
        self._execute(self._insert_sql(table, row), row)

    def _insert(self, table: t.Table[T], obj: T, **extra: Any) -> None:
        self._insert_row(table, table.to_row(obj) | extra)

    def _insert_unique(
        self, table: t.Table[T], obj: T, taken: Callable[[], AIFactoryError], **extra: Any
    ) -> None:
        """INSERT `obj` unless a row holds one of its unique values already; then raise
        `taken()`. `ON CONFLICT DO NOTHING` rather than the driver's integrity error: that
        error's text differs by database and names tables, and on PostgreSQL it would abort
        the whole transaction."""
        row = table.to_row(obj) | extra
        cursor = self._execute(self._insert_sql(table, row) + " ON CONFLICT DO NOTHING", row)
        self._fence(cursor, taken)

    def _update_sql(self, table: t.Table[Any], row: dict[str, Any], where: str = "") -> str:
        """The UPDATE of the columns in `row` (besides the key) of the row its key names."""
        key = ("update", table.name, where, *row)
        sql = self._sql.get(key)
        if sql is None:
            sets = ", ".join(f"{c} = :{c}" for c in row if c not in table.key)
            keys = " AND ".join(f"{c} = :{c}" for c in table.key)
            sql = f"UPDATE {table.name} SET {sets} WHERE {keys}{where}"  # noqa: S608
            self._sql[key] = sql
        return sql

    def _update_columns(
        self, table: t.Table[Any], row: dict[str, Any], where: str = "", **params: Any
    ) -> int:
        """UPDATE the columns in `row` (besides the key) of the row `row`'s key names; the
        number of rows changed (inside `pipeline()`, not known yet: -1)."""
        sql = self._update_sql(table, row, where)
        return self._execute(sql, row | params if params else row).rowcount

    def _update(self, table: t.Table[T], obj: T, where: str = "", **params: Any) -> int:
        return self._update_columns(table, table.to_row(obj), where, **params)

    def _one(self, table: t.Table[T], where: str, params: Sequence[Any]) -> T | None:
        row = self._execute(f"SELECT * FROM {table.name} WHERE {where}", params).fetchone()  # noqa: S608
        return None if row is None else table.from_row(row)

    def _many(self, table: t.Table[T], where: str, params: Sequence[Any]) -> list[T]:
        rows = self._execute(f"SELECT * FROM {table.name} WHERE {where}", params).fetchall()  # noqa: S608
        return [table.from_row(row) for row in rows]

    def _must(self, value: T | None, what: str, ident: str) -> T:
        if value is None:
            raise NotFoundError(f"no {what} {ident!r}", details={"id": ident})
        return value


class _Transaction:
    """`Database.transaction()`: a class rather than a generator, since every stage commit
    enters several (nested ones join the outer)."""

    __slots__ = ("_database", "_outer")

    def __init__(self, database: Database) -> None:
        self._database = database
        self._outer = False

    def __enter__(self) -> None:
        database = self._database
        database._lock.acquire()
        try:
            self._outer = database._depth == 0
            if self._outer:
                database.statements += 1
                database._begin()
        except BaseException:
            database._lock.release()
            raise
        database._depth += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        database = self._database
        try:
            database._depth -= 1
            if self._outer:
                database._written.clear()
                if exc_type is None:
                    try:
                        database._commit()
                    except BaseException:
                        # A failed COMMIT may leave the transaction open: end it.
                        database._quiet_rollback()
                        raise
                else:
                    database._quiet_rollback()
        finally:
            database._lock.release()
