"""The PostgreSQL backend: psycopg 3 connections, placeholder translation, errors, migrations.

psycopg's synchronous API is used on the store's lanes (see `_lanes`): its asyncio API would
not run under trio. Each lane owns one connection in autocommit mode; transactions are
explicit (`BEGIN` ... `COMMIT`), like SQLite's. A connection the server dropped is opened
again at the start of the next transaction or statement outside one.

The records' SQL is written with `?` and `:name` placeholders; they become `%s` and
`%(name)s` here (and a literal `%` becomes `%%`), once per statement text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from .._exceptions import ConflictError, StorageError, StoreBusyError
from ._records import Records
from ._sql import Cursor

__all__ = ["PostgresDatabase", "open_postgres"]

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
#: How long a connection may sit idle inside a transaction before the server ends it.
_IDLE_MS = 2000
#: Serialises migrations of one database across processes (any fixed 64-bit number).
_MIGRATION_LOCK = 0x41494641_43544F52


class _Row:
    """A row readable by position and by column name (as `sqlite3.Row` is)."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        """The column names."""
        return list(self._index)


def _row_factory(cursor: Any) -> Any:
    description = cursor.description or []
    index = {column.name: i for i, column in enumerate(description)}

    def make(values: Sequence[Any]) -> _Row:
        return _Row(values, index)

    return make


class PostgresDatabase(Records):
    """One PostgreSQL connection with the aifactory records on it."""

    dialect = "postgresql"
    migrations = "postgres"

    def __init__(self, url: str, *, busy_timeout_s: float) -> None:
        super().__init__(_redact(url))
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self._translated: dict[str, str] = {}
        self._conn: Any = None
        self._connect()

    def _connect(self) -> None:
        import psycopg

        try:
            self._conn = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=_row_factory,
                connect_timeout=10,
            )
            # A write waits this long for a lock held elsewhere, then `StoreBusyError`.
            self._conn.execute(f"SET lock_timeout = {int(self.busy_timeout_s * 1000)}")
            # A process stalled inside a transaction (paused, partitioned) loses it after
            # this long, and with it the row locks that would keep other replicas from
            # taking its executions over. Our transactions never wait between statements.
            self._conn.execute(f"SET idle_in_transaction_session_timeout = {_IDLE_MS}")
        except psycopg.Error as exc:
            raise StorageError(
                f"cannot connect to the state database {self.label}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
            ) from exc

    def _sql_text(self, sql: str) -> str:
        text = self._translated.get(sql)
        if text is None:
            text = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%").replace("?", "%s"))
            self._translated[sql] = text
        return text

    def _run(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> Cursor:
        import psycopg

        if self._conn.closed and self._depth == 0:
            self._connect()
        try:
            cursor: Cursor = self._conn.execute(self._sql_text(sql), params or None)
            return cursor
        except psycopg.errors.IntegrityError as exc:
            raise ConflictError(f"conflicts with stored state: {_first_line(exc)}") from exc
        except psycopg.errors.LockNotAvailable as exc:
            raise StoreBusyError(
                f"the state database is locked elsewhere (waited {self.busy_timeout_s:g} s)",
                details={"retry_after_s": 1},
            ) from exc
        except psycopg.Error as exc:
            raise StorageError(f"state database error: {_first_line(exc)}") from exc

    def _run_many(self, sql: str, rows: Sequence[Any]) -> None:
        import psycopg

        try:
            with self._conn.cursor() as cursor:
                cursor.executemany(self._sql_text(sql), rows)
        except psycopg.errors.IntegrityError as exc:
            raise ConflictError(f"conflicts with stored state: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"state database error: {_first_line(exc)}") from exc

    def _begin(self) -> None:
        self._run("BEGIN", ())

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()

    def _has_schema(self) -> bool:
        [exists] = self._execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
        return bool(exists)

    def _lock_schema(self) -> None:
        # Held until the migrating transaction ends.
        self._execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def _apply_script(self, script: str) -> None:
        self._conn.execute(script)  # several statements, no parameters: one simple query


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_postgres(
    url: str, *, readers: int = 2, busy_timeout_s: float = 5.0
) -> tuple[PostgresDatabase, list[PostgresDatabase]]:
    """The writer connection (schema migrated) and the reader connections of a database.

    Raises `StorageError` when psycopg is missing, the server cannot be reached, or the
    schema is newer than this code.
    """
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise StorageError(
            "PostgreSQL state needs psycopg: pip install 'aifactory[postgres]'"
        ) from None
    writer = PostgresDatabase(url, busy_timeout_s=busy_timeout_s)
    pool: list[PostgresDatabase] = []
    try:
        writer.migrate()
        for _ in range(max(1, readers)):
            pool.append(PostgresDatabase(url, busy_timeout_s=busy_timeout_s))
        return writer, pool
    except BaseException:
        for database in (writer, *pool):
            database.close()
        raise
