"""Persistence: the `Store` port and its backends (SQLite embedded, PostgreSQL deployed).

`open_store(location)` picks the backend by URL: `postgresql://...` (or `postgres://`) for
PostgreSQL, anything else is an SQLite file path (`":memory:"` for tests).
"""

from __future__ import annotations

from pathlib import Path

from .._exceptions import BadInputError
from .postgres import PostgresStore
from .sqlite import SQLiteStore
from .store import Store
from .writes import (
    CacheEntry,
    Claim,
    ExecutionFact,
    ExecutionWrite,
    Lease,
    MetricsFacts,
    Pruned,
    SpentBy,
    StageFact,
    UsageFacts,
)

__all__ = [
    "CacheEntry",
    "Claim",
    "ExecutionFact",
    "ExecutionWrite",
    "Lease",
    "MetricsFacts",
    "PostgresStore",
    "Pruned",
    "SQLiteStore",
    "SpentBy",
    "StageFact",
    "Store",
    "UsageFacts",
    "is_postgres_url",
    "open_store",
]


def is_postgres_url(location: str | Path) -> bool:
    """Whether `location` names a PostgreSQL database."""
    return str(location).startswith(("postgresql://", "postgres://"))


def open_store(location: str | Path) -> Store:
    """The store at `location`: a `postgresql://` URL or an SQLite file (or `":memory:"`).

    Raises `BadInputError` for a URL of another kind, and `StorageError` when the database
    cannot be opened.
    """
    text = str(location)
    if is_postgres_url(text):
        return PostgresStore(text)
    if "://" in text:
        raise BadInputError(
            f"unknown state location {text!r}: use a postgresql:// URL or an SQLite file path",
            details={"field": "state"},
        )
    return SQLiteStore(text)
