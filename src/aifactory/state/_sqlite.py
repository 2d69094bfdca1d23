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
                _create_private(path)
            db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
        except (sqlite3.Error, OSError) as exc:
            raise _unopenable(path, getattr(exc, "strerror", None) or str(exc)) from exc
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

    def check_integrity(self) -> None:
        """Read every page once (`PRAGMA quick_check`, about 1.5 ms a MB when cached), so a
        damaged file is refused when it opens rather than at the first query to touch the
        damage. Raises `StorageError` naming the file."""
        found = self._execute("PRAGMA quick_check(1)").fetchone()
        if found is not None and found[0] != "ok":
            raise _damaged(self.label, str(found[0]))

    def _run(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"conflicts with stored state: {exc}") from exc
        except sqlite3.Error as exc:
            raise _storage_error(exc, self.busy_timeout_s, self.label) from exc

    def _run_many(self, sql: str, rows: Sequence[Any]) -> None:
        try:
            self._db.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"conflicts with stored state: {exc}") from exc
        except sqlite3.Error as exc:
            raise _storage_error(exc, self.busy_timeout_s, self.label) from exc

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


def _create_private(path: str) -> None:
    """Create the database file as 0600, whatever the umask: accounts, sessions and costs
    are the owner's only. SQLite gives the WAL and its index, made later, the same mode."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)  # the umask may have taken bits off; it never adds any


def _damaged(path: str, reason: str) -> StorageError:
    # On one line: quick_check's report spans several.
    reason = " ".join(reason.replace("*** in database main ***", "").split())
    return StorageError(
        f"the state database {path} is damaged ({reason}): stop the services using it and "
        "restore it from a backup, or move it aside and run `aifactory init` for a new factory",
        details={"database": path},
    )


def _unopenable(path: str, reason: str) -> StorageError:
    return StorageError(
        f"cannot open the state database {path} ({reason}): check that it is a file this "
        "user can read and write, in a folder it can write",
        details={"database": path},
    )


# SQLITE_CORRUPT and SQLITE_NOTADB: the file is not (or no longer) a sound database.
_DAMAGED_CODES = frozenset({11, 26})
# SQLITE_CANTOPEN: SQLite opens files lazily, so a folder or an unreadable file at the path
# shows at the first statement.
_CANTOPEN = 14


def _storage_error(exc: sqlite3.Error, busy_timeout_s: float, path: str) -> StorageError:
    text = str(exc)
    if getattr(exc, "sqlite_errorcode", None) in _DAMAGED_CODES:
        return _damaged(path, text)
    if getattr(exc, "sqlite_errorcode", None) == _CANTOPEN:
        return _unopenable(path, text)
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
        if label == ":memory:":
            writer.migrate()
            return writer, [writer]
        writer.check_integrity()
        writer.migrate()
        pool = []
        for _ in range(max(1, readers)):
            reader = SQLiteDatabase(label, busy_timeout_s=busy_timeout_s)
            reader.configure()
            pool.append(reader)
        return writer, pool
    except BaseException:
        writer.close()
        raise
