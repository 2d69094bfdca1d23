"""Usage records: model calls made outside any execution, and what a client's usage report
reads (synchronous, see `_sql`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from ..models import Cost, ModelUsage, Usage
from ..protocol.codec import converter
from ._sql import Database
from ._tables import Table
from .writes import ExecutionFact, MetricsFacts, SpentBy, StageFact, UsageFacts

__all__ = ["MODEL_USAGE", "UsageRecords"]

MODEL_USAGE = Table("model_usage", ModelUsage, ("id",))


def _usage(text: str) -> Usage:
    return converter.structure(json.loads(text), Usage)


def _cost(text: str) -> Cost:
    return converter.structure(json.loads(text), Cost)


def _at(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _actions(template: str) -> dict[str, str]:
    """Stage id → action, from an execution's template JSON."""
    stages = json.loads(template).get("stages", [])
    return {str(s.get("id")): str(s.get("action", "")) for s in stages if isinstance(s, dict)}


class UsageRecords(Database):
    """The model-usage ledger and the usage report's reads."""

    def add_model_usage(self, calls: Iterable[ModelUsage]) -> None:
        """Record model calls made outside any execution."""
        for call in calls:
            self._insert(MODEL_USAGE, call)

    def usage_facts(self, client_id: str, start: datetime, end: datetime) -> UsageFacts:
        """What client `client_id` used from `start` to `end` (a month): its executions
        created then and their stage runs, its model calls outside executions, and what its
        budget was charged in `start`'s month. One snapshot (one transaction)."""
        # The template's name is inside the execution's template JSON.
        name = (
            "(e.template::json ->> 'name')"
            if self.dialect == "postgresql"
            else "json_extract(e.template, '$.name')"
        )
        since, until = start.isoformat(), end.isoformat()
        with self.transaction():
            executions = self._execute(
                f"SELECT e.id, {name}, e.status, e.usage, e.cost FROM executions e "  # noqa: S608
                "WHERE e.client_id = ? AND e.created_at >= ? AND e.created_at < ? ORDER BY e.id",
                (client_id, since, until),
            ).fetchall()
            runs = self._execute(
                "SELECT s.execution_id, s.worker, s.status, s.usage, s.cost FROM stage_runs s "
                "JOIN executions e ON e.id = s.execution_id "
                "WHERE e.client_id = ? AND e.created_at >= ? AND e.created_at < ? "
                "ORDER BY s.execution_id, s.stage_id",
                (client_id, since, until),
            ).fetchall()
            calls = self._many(
                MODEL_USAGE,
                "client_id = ? AND at >= ? AND at < ? ORDER BY at, id",
                (client_id, since, until),
            )
            charged = self._execute(
                "SELECT amount_usd FROM charges WHERE client_id = ? AND month = ?",
                (client_id, start.strftime("%Y-%m")),
            ).fetchall()
        return UsageFacts(
            tuple(SpentBy(r[0], str(r[1]), r[2], _usage(r[3]), _cost(r[4])) for r in executions),
            tuple(SpentBy(r[0], r[1], r[2], _usage(r[3]), _cost(r[4])) for r in runs),
            tuple(calls),
            sum((Decimal(r[0]) for r in charged), Decimal(0)),
        )

    def metrics_facts(self, start: datetime, end: datetime) -> MetricsFacts:
        """The executions created from `start` to `end`, with their request's creation time,
        and their stage runs. One snapshot (one transaction)."""
        since, until = start.isoformat(), end.isoformat()
        with self.transaction():
            executions = self._execute(
                "SELECT e.id, e.client_id, e.template, e.status, e.error, e.created_at, "
                "e.started_at, e.finished_at, r.created_at, e.usage, e.cost FROM executions e "
                "LEFT JOIN requests r ON r.id = e.request_id "
                "WHERE e.created_at >= ? AND e.created_at < ? ORDER BY e.id",
                (since, until),
            ).fetchall()
            runs = self._execute(
                "SELECT s.execution_id, s.stage_id, s.worker, s.status, s.attempt, "
                "s.started_at, s.finished_at, s.usage, s.cost, s.summary FROM stage_runs s "
                "JOIN executions e ON e.id = s.execution_id "
                "WHERE e.created_at >= ? AND e.created_at < ? "
                "ORDER BY s.execution_id, s.stage_id",
                (since, until),
            ).fetchall()
        facts, actions = [], {}
        for r in executions:
            template = r[2] if isinstance(r[2], str) else json.dumps(r[2])
            actions[r[0]] = _actions(template)
            facts.append(
                ExecutionFact(
                    r[0],
                    r[1],
                    str(json.loads(template).get("name", "")),
                    r[3],
                    r[4],
                    _at(r[5]) or start,
                    _at(r[6]),
                    _at(r[7]),
                    _at(r[8]),
                    _usage(r[9]),
                    _cost(r[10]),
                )
            )
        return MetricsFacts(
            tuple(facts),
            tuple(
                StageFact(
                    r[0],
                    r[1],
                    r[2],
                    actions[r[0]].get(r[1], ""),
                    r[3],
                    r[4],
                    _at(r[5]),
                    _at(r[6]),
                    _usage(r[7]),
                    _cost(r[8]),
                    json.loads(r[9]) if isinstance(r[9], str) else dict(r[9] or {}),
                )
                for r in runs
            ),
        )
