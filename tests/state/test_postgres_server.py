"""The PostgreSQL test harness (`tests/postgres_server.py`) and the PostgreSQL schema.

Each test's `postgres_url` is a schema of its own on one server for the session; the first
PostgreSQL migration applies there and matches the SQLite one table by table and column by
column, with the audit log append-only.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.postgres_server import PostgresServer, _schema_of


def _migration(dialect: str, name: str = "0001_initial.sql") -> str:
    # Found without importing aifactory (as importlib.resources would): the SQL is data.
    spec = importlib.util.find_spec("aifactory")
    assert spec is not None
    assert spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)))
    return (folder / "state" / "migrations" / dialect / name).read_text(encoding="utf-8")


@pytest.fixture
def migrated(postgres_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection to a fresh schema with the first migration applied."""
    with psycopg.connect(postgres_url) as conn:
        conn.execute(_migration("postgres").encode())
        conn.commit()
        yield conn


def _sqlite_tables() -> dict[str, list[tuple[str, str, bool, bool]]]:
    """The SQLite schema's tables: (column, type, not null, in the primary key), in order."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(_migration("sqlite"))
        names = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
        return {
            name: [
                (column, kind.upper(), bool(notnull), bool(pk))
                for _, column, kind, notnull, _, pk in db.execute(f'PRAGMA table_info("{name}")')
            ]
            for name in names
        }
    finally:
        db.close()


def _sqlite_indexes() -> set[str]:
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(_migration("sqlite"))
        return {
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
    finally:
        db.close()


def _postgres_columns(
    conn: psycopg.Connection[tuple[object, ...]], table: str
) -> list[tuple[str, str, bool]]:
    rows = conn.execute(
        "SELECT column_name, data_type, is_nullable = 'NO' FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [(str(name), str(kind), bool(notnull)) for name, kind, notnull in rows]


def test_urls_are_isolated_schemas(postgres_server: PostgresServer) -> None:
    first, second = postgres_server.fresh_schema(), postgres_server.fresh_schema()
    try:
        assert first != second
        assert first.startswith(f"postgresql://postgres@127.0.0.1:{postgres_server.port}/")
        with psycopg.connect(first) as conn:
            assert conn.execute("SELECT current_schema()").fetchone() == (_schema_of(first),)
            conn.execute("CREATE TABLE only_here (x BIGINT)")
            conn.execute("INSERT INTO only_here VALUES (1)")
        with psycopg.connect(second) as conn:
            assert conn.execute("SELECT current_schema()").fetchone() == (_schema_of(second),)
            assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
            with pytest.raises(psycopg.errors.UndefinedTable):
                conn.execute("SELECT * FROM only_here")
    finally:
        postgres_server.drop_schema(first)
        postgres_server.drop_schema(second)
    with psycopg.connect(postgres_server.url("aifactory_test"), autocommit=True) as conn:
        gone = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname IN (%s, %s)",
            (_schema_of(first), _schema_of(second)),
        ).fetchone()
        assert gone == (0,)


def test_the_url_connects_to_a_fast_local_server(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url) as conn:
        assert conn.info.host == "127.0.0.1"
        assert conn.info.port == postgres_server.port
        assert conn.info.user == "postgres"
        assert conn.info.dbname == "aifactory_test"
        settings: dict[object, object] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                (["fsync", "synchronous_commit", "listen_addresses", "server_encoding"],),
            ).fetchall()
        )
        assert settings == {
            "fsync": "off",
            "synchronous_commit": "off",
            "listen_addresses": "127.0.0.1",
            "server_encoding": "UTF8",
        }
    # The Unix socket in the server's folder answers too.
    with psycopg.connect(
        host=str(postgres_server.socket_dir), port=postgres_server.port, user="postgres"
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_first_migration_matches_sqlite(
    migrated: psycopg.Connection[tuple[object, ...]],
) -> None:
    sqlite_tables = _sqlite_tables()
    postgres_tables = [
        str(row[0])
        for row in migrated.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    ]
    assert sorted(postgres_tables) == sorted(sqlite_tables)
    types = {"TEXT": {"text"}, "INTEGER": {"bigint", "boolean"}, "BLOB": {"bytea"}}
    for table, columns in sqlite_tables.items():
        found = _postgres_columns(migrated, table)
        assert [c[0] for c in found] == [c[0] for c in columns], table
        for (name, kind, notnull, pk), (_, pg_kind, pg_notnull) in zip(columns, found, strict=True):
            assert pg_kind in types[kind], (table, name, pg_kind)
            assert pg_notnull == (notnull or pk), (table, name)
    booleans = migrated.execute(
        "SELECT table_name || '.' || column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND data_type = 'boolean' ORDER BY 1"
    ).fetchall()
    assert booleans == [("clients.active",), ("users.active",)]
    indexes = {
        str(row[0])
        for row in migrated.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        )
    }
    assert _sqlite_indexes() | {"clients_name", "users_email"} <= indexes


def test_a_row_fits_every_table(migrated: psycopg.Connection[tuple[object, ...]]) -> None:
    # In the SQLite script's order, which puts referenced tables first; every TEXT is "x".
    samples = {"text": "x", "bigint": 2**40, "boolean": True, "bytea": b"\x00\xff"}
    for table in _sqlite_tables():
        columns = [
            (name, kind)
            for name, kind, _ in _postgres_columns(migrated, table)
            if (table, name) not in {("audit", "id"), ("payloads", "id")}
        ]
        migrated.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                sql.Identifier(table),
                sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            ),
            [samples[kind] for _, kind in columns],
        )
        assert migrated.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone() == (1,)
    ids = migrated.execute("INSERT INTO payloads (data) VALUES (%s) RETURNING id", (b"y",))
    assert ids.fetchone() == (2,)
    migrated.commit()


def test_names_and_emails_are_unique_ignoring_case(
    migrated: psycopg.Connection[tuple[object, ...]],
) -> None:
    client = "INSERT INTO clients VALUES (%s, %s, 'std', '1', '0', '2025-01', 'now', true)"
    migrated.execute(client, ("c1", "Acme"))
    with pytest.raises(psycopg.errors.UniqueViolation):
        migrated.execute(client, ("c2", "ACME"))
    migrated.rollback()
    user = "INSERT INTO users VALUES (%s, %s, 'admin', NULL, 'now', 'A', true, 'h')"
    migrated.execute(user, ("u1", "a@example.com"))
    with pytest.raises(psycopg.errors.UniqueViolation):
        migrated.execute(user, ("u2", "A@Example.COM"))
    migrated.rollback()


def test_the_audit_log_is_append_only(migrated: psycopg.Connection[tuple[object, ...]]) -> None:
    migrated.execute(
        "INSERT INTO audit (at, actor, action, target, outcome, details)"
        " VALUES ('now', 'system', 'x', 't', 'ok', '{}')"
    )
    migrated.commit()
    for statement in ("UPDATE audit SET actor = 'me'", "DELETE FROM audit", "TRUNCATE audit"):
        with pytest.raises(psycopg.IntegrityError, match="append-only"):
            migrated.execute(statement.encode())
        migrated.rollback()
    assert migrated.execute("SELECT id, actor FROM audit").fetchall() == [(1, "system")]


def test_missing_binaries_fail_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"apt-get install postgresql"):
        PostgresServer().start()
