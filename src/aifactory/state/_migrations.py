"""Versioned schema migrations, one folder of numbered SQL scripts per backend.

`migrations/sqlite/0001_initial.sql`, `0002_leases.sql`, ... (and the same numbers under
`migrations/postgres/`): each script takes the schema from the version before it to its own
number. The version a database is at lives in its `meta` table (`schema_version`); a
database without one is empty (version 0). Opening applies what is missing, in order, each
script with its version bump in one transaction; a database at a version newer than the
newest script here was written by a newer aifactory and is refused, never downgraded.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

import attrs

from .._exceptions import StorageError

__all__ = [
    "Migration",
    "latest_version",
    "migrations",
    "newer_schema_error",
    "pending",
    "split_statements",
]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@attrs.frozen
class Migration:
    """One script: the version it brings the schema to, its name and its SQL."""

    version: int
    name: str
    sql: str


def migrations(dialect: str) -> list[Migration]:
    """Every migration of `dialect` (`"sqlite"` or `"postgres"`), in version order."""
    folder = resources.files(__package__).joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{dialect} migrations are not numbered 1..n: {found}")
    return found


@functools.cache
def latest_version(dialect: str) -> int:
    """The version the newest migration of `dialect` brings the schema to (0: none)."""
    known = migrations(dialect)
    return known[-1].version if known else 0


def pending(dialect: str, current: int, label: str) -> list[Migration]:
    """The migrations a database at version `current` still needs.

    Raises `StorageError` if `current` is newer than every migration here.
    """
    known = migrations(dialect)
    latest = known[-1].version if known else 0
    if current > latest:
        raise newer_schema_error(label, current, latest)
    return [m for m in known if m.version > current]


def newer_schema_error(label: str, found: int, latest: int) -> StorageError:
    """The error for a database written by a newer aifactory."""
    return StorageError(
        f"the state database {label} has schema version {found}, newer than this "
        f"aifactory knows ({latest}); upgrade aifactory to open it",
        details={"schema_version": found, "supported": latest},
    )


def split_statements(script: str) -> list[str]:
    """The statements of an SQLite script, triggers' bodies kept whole."""
    import sqlite3

    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            text = buffer.strip()
            if text and not all(
                part.strip().startswith("--") or not part.strip() for part in text.splitlines()
            ):
                statements.append(text)
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise RuntimeError(f"incomplete statement at the end of a migration: {buffer[:80]!r}")
    return statements
