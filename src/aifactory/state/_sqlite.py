"""The SQLite backend: connections in WAL mode, error mapping and migrations.

A file database has one writer connection and a few reader connections: in WAL mode readers
never wait for the writer, so a write lock held by another process (a second factory on the
same home, a backup tool) delays only writes. A write that cannot get the lock within
`busy_timeout_s` fails with `StoreBusyError` (HTTP 503 with `Retry-After`). `":memory:"`
has a single connection for both.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._exceptions import ConflictError, StorageError, StoreBusyError
from ._migrations import split_statements
from ._records import Records
from ._sql import Cursor

__all__ = ["SQLiteDatabase", "open_sqlite"]

#: How long a write waits for another process's lock before `StoreBusyError`.
DEFAULT_BUSY_TIMEOUT_S = 5.0


class SQLiteDatabase(Records):
    """One SQLite connection with the aifactory records on it."""

    dialect = "sqlite"
    migrations = "sqlite"

    def __init__(self, path: str, *, busy_timeout_s: float) -> None:
        super().__init__(path)
        self.busy_timeout_s = busy_timeout_s
        try:
            if path != ":memory:" and not Path(path).exists():
                # Accounts, sessions and costs are the owner's only (the WAL and its index,
                # created later, take the file's permissions).
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open the state database {path}: {exc}") from exc
        db.row_factory = sqlite3.Row
        self._db = db

    def configure(self) -> None:
        """Set the connection's pragmas (the writer also switches the file to WAL)."""
        if self.label != ":memory:":
            self._execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode keeps every commit atomic and durable against a process crash;
        # only an OS crash may lose the last transactions.
        self._execute("PRAGMA synchronous=NORMAL")
        self._execute("PRAGMA foreign_keys=ON")

    def _run(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"conflicts with stored state: {exc}") from exc
        except sqlite3.Error as exc:
            raise _storage_error(exc, self.busy_timeout_s) from exc

    def _run_many(self, sql: str, rows: Sequence[Any]) -> None:
        try:
            self._db.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"conflicts with stored state: {exc}") from exc
        except sqlite3.Error as exc:
            raise _storage_error(exc, self.busy_timeout_s) from exc

    def _begin(self) -> None:
        self._run("BEGIN IMMEDIATE", ())

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _has_schema(self) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        return self._execute(sql).fetchone() is not None

    def _apply_script(self, script: str) -> None:
        for statement in split_statements(script):
            self._execute(statement)


def _storage_error(exc: sqlite3.Error, busy_timeout_s: float) -> StorageError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        busy: StorageError = StoreBusyError(
            f"the state database is locked by another process (waited {busy_timeout_s:g} s)",
            details={"retry_after_s": 1},
        )
        return busy
    return StorageError(f"state database error: {text}")


def open_sqlite(
    path: str | Path, *, readers: int = 2, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> tuple[SQLiteDatabase, list[SQLiteDatabase]]:
    """The writer connection (schema migrated) and the reader connections of a database.

    Raises `StorageError` when it cannot be opened or its schema is newer than this code.
    """
    label = str(path)
    writer = SQLiteDatabase(label, busy_timeout_s=busy_timeout_s)
    try:
        writer.configure()
        writer.migrate()
        if label == ":memory:":
            return writer, [writer]
        pool = []
        for _ in range(max(1, readers)):
            reader = SQLiteDatabase(label, busy_timeout_s=busy_timeout_s)
            reader.configure()
            pool.append(reader)
        return writer, pool
    except BaseException:
        writer.close()
        raise
