"""A throwaway PostgreSQL schema for one measurement, so that repeated runs start empty."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["pg_schema"]


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A new schema in the database at `url`; yields a URL whose connections use it, and
    drops it (and everything in it) afterwards."""
    import psycopg

    schema = f"aif_bench_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
    parts = urlsplit(url)
    option = "options=" + quote(f"-csearch_path={schema}")
    query = f"{parts.query}&{option}" if parts.query else option
    try:
        yield urlunsplit(parts._replace(query=query))
    finally:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
