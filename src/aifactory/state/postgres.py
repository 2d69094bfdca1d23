"""`PostgresStore`: the state store on PostgreSQL, shared by every process of a deployment."""

from __future__ import annotations

from ._postgres import open_postgres
from ._threaded import ThreadedStore

__all__ = ["PostgresStore"]


class PostgresStore(ThreadedStore):
    """The state in a PostgreSQL database (`postgresql://user@host:port/dbname`).

    Its schema is migrated when it opens (one process at a time). One writer connection and
    `readers` reader connections, each on a thread of its own (psycopg's synchronous API, so
    that the store works under asyncio and trio alike). A write waits at most
    `busy_timeout_s` for a lock held by another connection, then raises `StoreBusyError`.

    Raises `StorageError` when psycopg is not installed (`pip install 'aifactory[postgres]'`),
    the server cannot be reached, or the schema is newer than this aifactory.
    """

    def __init__(self, url: str, *, readers: int = 2, busy_timeout_s: float = 5.0) -> None:
        writer, pool = open_postgres(url, readers=readers, busy_timeout_s=busy_timeout_s)
        self.url = writer.label
        super().__init__(writer, list(pool), "postgres")
