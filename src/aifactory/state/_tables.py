"""Mapping between attrs models and SQLite rows, through the JSON codec.

Every table's columns are named after its model's fields; fields that hold structures
(dicts, tuples of values, nested models, storage references) are stored as JSON text.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import typing
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import attrs
import cattrs

from .._exceptions import StorageError
from ..models import (
    AuditEvent,
    Client,
    Deliverable,
    Execution,
    ExecutionEvent,
    Notification,
    Request,
    Session,
    StageRun,
    User,
)
from ..protocol.codec import converter, dumps

T = TypeVar("T")

__all__ = ["Table"]


@attrs.frozen(cache_hash=False)
class Table(Generic[T]):
    """One table: its name, model class, key columns and JSON columns."""

    name: str
    cls: type[T]
    key: tuple[str, ...]
    json_columns: frozenset[str] = frozenset()

    @property
    def columns(self) -> tuple[str, ...]:
        """The model's field names, in order."""
        return tuple(f.name for f in attrs.fields(self.cls))  # type: ignore[arg-type]

    def to_row(self, obj: T) -> dict[str, Any]:
        """The row values for `obj`."""
        row: dict[str, Any] = converter.unstructure(obj)
        for col in self.json_columns:
            if row[col] is not None:
                row[col] = dumps(row[col]).decode()
        return row

    @functools.cached_property
    def _bool_columns(self) -> frozenset[str]:
        # SQLite has no booleans: they come back as 0/1, and the codec does not coerce.
        hints = typing.get_type_hints(self.cls)
        return frozenset(name for name in self.columns if hints.get(name) is bool)

    def from_row(self, row: sqlite3.Row | Mapping[str, Any]) -> T:
        """The model for a row. Raises `StorageError` if the row is corrupt."""
        data = {col: row[col] for col in self.columns}
        for col in self._bool_columns:
            data[col] = bool(data[col])
        try:
            for col in self.json_columns:
                if data[col] is not None:
                    data[col] = json.loads(data[col])
            return converter.structure(data, self.cls)
        except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
            raise StorageError(f"corrupt row in table {self.name}") from exc


CLIENTS = Table("clients", Client, ("id",))
USERS = Table("users", User, ("id",))
SESSIONS = Table("sessions", Session, ("token_hash",))
REQUESTS = Table("requests", Request, ("id",), frozenset({"parameters"}))
EXECUTIONS = Table(
    "executions",
    Execution,
    ("id",),
    frozenset({"template", "parameters", "usage", "cost", "context", "resources"}),
)
STAGE_RUNS = Table(
    "stage_runs",
    StageRun,
    ("execution_id", "stage_id"),
    frozenset({"input_ref", "output_ref", "summary", "usage", "cost"}),
)
EVENTS = Table("events", ExecutionEvent, ("execution_id", "seq"), frozenset({"data"}))
DELIVERABLES = Table("deliverables", Deliverable, ("id",), frozenset({"ref", "metadata"}))
NOTIFICATIONS = Table("notifications", Notification, ("id",), frozenset({"data"}))
AUDIT = Table("audit", AuditEvent, ("id",), frozenset({"details"}))
