"""`Database`: the SQLite connection under every store, its transactions and generic row access.

One connection, guarded by a re-entrant lock, used from whichever thread calls it. Calls are
short (indexed single-row reads and writes, microseconds each), so async callers use it
directly rather than paying a thread hop per call; `commits.GroupCommit` batches the writes of
concurrent executions into one transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .._exceptions import ConflictError, NotFoundError, StorageError
from . import _tables as t
from ._checkpointer import WalCheckpointer

__all__ = ["SCHEMA_VERSION", "Database"]

SCHEMA_VERSION = 1  # still unreleased: the schema may change in place until 0.1.0 ships
T = TypeVar("T")


class Database:
    """An SQLite database (`":memory:"` for tests) in WAL mode with the aifactory schema.

    Raises `StorageError` when the database cannot be opened.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.row_factory = sqlite3.Row
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                # Checkpoints run on the checkpointer's thread, not inside our commits.
                self._db.execute("PRAGMA wal_autocheckpoint=0")
            # NORMAL in WAL mode keeps every commit atomic and durable against a process
            # crash; only an OS crash may lose the last transactions.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # Up to 64 MiB of pages (the default is 2 MiB): with many executions in flight,
            # each group commit touches their rows on many pages, which then stay cached.
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.executescript(resources.files(__package__).joinpath("schema.sql").read_text())
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open state database {self.path}: {exc}") from exc
        self._checkpointer: WalCheckpointer | None = None
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
        self._check_version()
        if self.path != ":memory:":
            self._checkpointer = WalCheckpointer(self.path)

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise StorageError(
                f"state database {self.path} has schema {row[0]}, newer than this aifactory "
                f"({SCHEMA_VERSION}); upgrade aifactory"
            )

    def close(self) -> None:
        """Close the database."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._lock:
            self._db.close()

    # -- transactions ----------------------------------------------------------------------------

    def transaction(self) -> AbstractContextManager[None]:
        """Run the block as one atomic transaction (joins an enclosing one)."""
        return _Transaction(self)

    def _commit(self) -> None:
        try:
            self._execute("COMMIT")
        except StorageError:
            # A failed COMMIT may leave the transaction open: end it, nothing was written.
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        if self._checkpointer is not None and self._checkpointer.committed():
            self._checkpoint_tail()

    def _checkpoint_tail(self) -> None:
        assert self._checkpointer is not None
        # Between transactions: copies what the checkpointer thread has not yet, so that
        # the next commit can start the log over (see `_checkpointer`).
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            busy = 1  # tried again after the next commit
        self._checkpointer.tail_done(not busy)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: undo only this block's writes if it raises."""
        with self._lock:
            if self._depth == 0:
                raise StorageError("a savepoint needs an enclosing transaction")
            self._savepoints += 1
            name = f"sp{self._savepoints}"
            self._execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                self._written.clear()
                self._db.execute(f"ROLLBACK TO {name}")
                self._db.execute(f"RELEASE {name}")
                raise
            finally:
                self._savepoints -= 1
            self._execute(f"RELEASE {name}")

    # -- generic row access ----------------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"conflicts with stored state: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"state database error: {exc}") from exc

    def _executemany(
        self, sql: str, rows: Sequence[Sequence[Any]] | Sequence[dict[str, Any]]
    ) -> None:
        try:
            with self._lock:
                self._db.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"conflicts with stored state: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"state database error: {exc}") from exc

    def _insert(self, table: t.Table[T], obj: T, **extra: Any) -> None:
        row = table.to_row(obj) | extra
        sql = self._sql.get(("insert", table.name, *row))
        if sql is None:
            cols = ", ".join(row)
            marks = ", ".join(f":{c}" for c in row)
            sql = f"INSERT INTO {table.name} ({cols}) VALUES ({marks})"  # noqa: S608
            self._sql[("insert", table.name, *row)] = sql
        self._execute(sql, row)

    def _update_columns(
        self, table: t.Table[Any], row: dict[str, Any], where: str = "", **params: Any
    ) -> int:
        """UPDATE the columns in `row` (besides the key) of the row `row`'s key names."""
        key = ("update", table.name, where, *row)
        sql = self._sql.get(key)
        if sql is None:
            sets = ", ".join(f"{c} = :{c}" for c in row if c not in table.key)
            keys = " AND ".join(f"{c} = :{c}" for c in table.key)
            sql = f"UPDATE {table.name} SET {sets} WHERE {keys}{where}"  # noqa: S608
            self._sql[key] = sql
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
                database._execute("BEGIN IMMEDIATE")
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
                    database._commit()
                else:
                    database._db.execute("ROLLBACK")
        finally:
            database._lock.release()
