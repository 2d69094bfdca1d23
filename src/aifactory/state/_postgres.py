"""The PostgreSQL backend: psycopg 3 connections, placeholder translation, errors, migrations.

psycopg's synchronous API is used on the store's lanes (see `_lanes`): its asyncio API would
not run under trio. Each lane owns one connection in autocommit mode; transactions are
explicit (`BEGIN` ... `COMMIT`), like SQLite's. A connection the server dropped is opened
again at the start of the next transaction or statement outside one.

Every wait for the server is a round trip, so the statements that answer nothing (`BEGIN`,
`SAVEPOINT`, `RELEASE`) are not sent on their own: they wait for the next statement and go
out with it. A stage commit (`Records.record`) collects its statements and sends them as one
message, a multi-statement simple query with the values bound in the client (psycopg's
`ClientCursor.mogrify`); its fences are checked on the row counts that come back, then
`COMMIT`: two round trips. One message, rather than a pipeline of extended-protocol
statements, also means the server never holds the transaction's row locks while waiting for
the rest of it: a process paused between its sends would otherwise keep them (the idle-in-
transaction timeout starts only once a message has been answered), and with them its
executions from the replicas that should take them over. The commit's payload ids are taken
from blocks the `payloads` sequence hands out (it counts in steps of `_ID_BLOCK`), so their
INSERTs need no answer.

The records' SQL is written with `?` and `:name` placeholders; they become `%s` and
`%(name)s` here (and a literal `%` becomes `%%`), once per statement text.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
#: Payload ids taken at once: the `payloads` id sequence's step (migration 0004).
_ID_BLOCK = 64


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


class _Deferred:
    """A statement inside `pipeline()`: sent at its end; its row count known then."""

    __slots__ = ("params", "rowcount", "sql")

    def __init__(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> None:
        self.sql = sql
        self.params = params
        self.rowcount = -1

    def fetchone(self) -> Any:
        raise RuntimeError("a statement inside a pipeline answers nothing")

    def fetchall(self) -> list[Any]:
        raise RuntimeError("a statement inside a pipeline answers nothing")


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
        # Statements that answer nothing, waiting to go out with the next one.
        self._unsent: list[str] = []
        # Whether a `BEGIN` has gone out and its transaction not ended yet.
        self._begun = False
        # Inside `pipeline()`: its statements, sent when it ends.
        self._batch: list[_Deferred] | None = None
        self._payload_ids: collections.deque[int] = collections.deque()
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
            # Binds values in the client, for statements sent together as one message.
            self._mogrify = psycopg.ClientCursor(self._conn)
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

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """psycopg's errors as ours."""
        import psycopg

        try:
            yield
        except psycopg.errors.IntegrityError as exc:
            raise ConflictError(f"conflicts with stored state: {_first_line(exc)}") from exc
        except psycopg.errors.LockNotAvailable as exc:
            raise StoreBusyError(
                f"the state database is locked elsewhere (waited {self.busy_timeout_s:g} s)",
                details={"retry_after_s": 1},
            ) from exc
        except psycopg.Error as exc:
            raise StorageError(f"state database error: {_first_line(exc)}") from exc

    def _script(self, statements: Sequence[tuple[str, Sequence[Any] | dict[str, Any]]]) -> Any:
        """Send the held statements and `statements` as one message (a multi-statement
        simple query, the values bound in the client); the cursor, at the first of
        `statements`' results."""
        held = len(self._unsent)
        texts = [*self._unsent]
        texts += [
            self._mogrify.mogrify(self._sql_text(sql), params or None) for sql, params in statements
        ]
        # Sent, whatever comes back: a failed statement leaves the transaction to roll back.
        self._begun = self._begun or "BEGIN" in self._unsent
        self._unsent.clear()
        cursor = self._conn.cursor()
        cursor.execute("; ".join(texts))
        for _ in range(held):
            cursor.nextset()
        return cursor

    def _run(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> Cursor:
        if self._batch is not None:  # in a pipeline: sent, and answered, at its end
            deferred = _Deferred(sql, params)
            self._batch.append(deferred)
            return deferred
        with self._errors():
            if self._conn.closed and not self._begun:
                self._connect()
            self.round_trips += 1
            if self._unsent:  # the held statements and this one: one message
                cursor: Cursor = self._script([(sql, params)])
                return cursor
            cursor = self._conn.execute(self._sql_text(sql), params or None)
            return cursor

    def _run_many(self, sql: str, rows: Sequence[Any]) -> None:
        if self._batch is not None:
            self._batch.extend(_Deferred(sql, row) for row in rows)
            return
        with self._errors():
            self.round_trips += 1
            if self._unsent:
                self._script([(sql, row) for row in rows])
            else:
                self._conn.cursor().executemany(self._sql_text(sql), rows)

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Send the block's statements as one message at its end (one round trip), each
        fence checked on its statement's row count."""
        if self._batch is not None:
            yield  # joins the enclosing pipeline
            return
        self._batch, self._fences = [], []
        try:
            yield
            batch, fences = self._batch, self._fences
        finally:
            self._batch = self._fences = None
        if batch:
            with self._errors():
                if self._conn.closed and not self._begun:
                    self._connect()
                self.round_trips += 1
                cursor = self._script([(d.sql, d.params) for d in batch])
                for i, deferred in enumerate(batch):
                    if i:
                        cursor.nextset()
                    deferred.rowcount = cursor.rowcount
        self._check_fences(fences)

    def _mark(self, sql: str) -> None:
        self.statements += 1
        self._unsent.append(sql)

    def _undo_savepoint(self, name: str) -> None:
        opening = f"SAVEPOINT {name}"
        if opening in self._unsent:  # never sent: forget it and what followed it
            del self._unsent[self._unsent.index(opening) :]
        else:
            super()._undo_savepoint(name)

    def _begin(self) -> None:
        self._unsent.append("BEGIN")

    def _commit(self) -> None:
        try:
            if self._unsent[:1] == ["BEGIN"]:
                self._unsent.clear()  # nothing was sent: nothing to commit
            else:
                super()._commit()
        finally:
            self._begun = False

    def _rollback(self) -> None:
        unsent = self._unsent[:1] == ["BEGIN"]
        self._unsent.clear()
        try:
            if not unsent and not self._conn.closed:
                self._run("ROLLBACK", ())
        finally:
            self._begun = False

    def _new_payload_id(self) -> int | None:
        if not self._payload_ids:
            # A round trip of its own, once every `_ID_BLOCK` payloads. It need not wait for
            # the transaction: a sequence is not transactional.
            with self._errors():
                if self._conn.closed and not self._begun:
                    self._connect()
                self.statements += 1
                self.round_trips += 1
                [first] = self._conn.execute(
                    "SELECT nextval(pg_get_serial_sequence('payloads', 'id'))"
                ).fetchone()
            self._payload_ids.extend(range(int(first), int(first) + _ID_BLOCK))
        return self._payload_ids.popleft()

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
        with self._errors():
            # Several statements, no parameters: one simple query (with any held ones).
            script = "; ".join([*self._unsent, script])
            self._begun = self._begun or "BEGIN" in self._unsent
            self._unsent.clear()
            self._conn.execute(script)


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
