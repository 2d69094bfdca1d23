"""`SQLiteStore`: the state store in one SQLite database, the embedded default."""

from __future__ import annotations

from pathlib import Path

from ._sqlite import DEFAULT_BUSY_TIMEOUT_S, open_sqlite
from ._threaded import ThreadedStore

__all__ = ["SQLiteStore"]


class SQLiteStore(ThreadedStore):
    """The state in one SQLite database file in WAL mode (`":memory:"` for tests).

    Its schema is migrated when it opens. A file database has one writer connection and
    `readers` reader connections, each on a thread of its own; a write waits at most
    `busy_timeout_s` for another process's lock, then raises `StoreBusyError`.

    Raises `StorageError` when the database cannot be opened, or was written by a newer
    aifactory.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        readers: int = 2,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        self.path = str(path)
        writer, pool = open_sqlite(self.path, readers=readers, busy_timeout_s=busy_timeout_s)
        super().__init__(writer, list(pool), "sqlite")
