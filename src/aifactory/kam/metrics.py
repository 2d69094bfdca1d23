"""`MetricsService`: the factory-wide metrics of a time window, for staff.

Like the usage report (`kam.usage`), the figures are made from what the factory records
anyway: executions (status, times, totals), their requests' creation times, and stage runs
(attempts, times, usage, cost, and the summary of the committed attempt, where the worker
host put the CPU time and peak memory it measured and the orchestrator the queue wait).
The grouping and the percentiles are pure functions (`metrics_lines`, `percentile`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from .._clock import Clock
from .._exceptions import BadInputError, PermissionDeniedError
from ..models import METRICS_GROUPINGS, MetricsLine, MetricsReport, Principal
from ..state import ExecutionFact, StageFact, Store

__all__ = ["MetricsService", "metrics_lines", "parse_since", "percentile"]

_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The window when none is asked for.
DEFAULT_WINDOW = timedelta(days=7)


def parse_since(text: str, now: datetime) -> datetime:
    """The instant `text` names: an ISO-8601 time (UTC if it names no zone) or a duration
    back from `now` (`90s`, `15m`, `24h`, `7d`). Raises `BadInputError` for anything else."""
    found = _DURATION.fullmatch(text.strip())
    if found is not None:
        return now - timedelta(seconds=int(found[1]) * _UNIT_S[found[2]])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(
            f"a time is ISO-8601 (2026-01-01T00:00:00Z) or a duration (24h, 7d), not {text!r}",
            details={"value": text},
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=now.tzinfo)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0-100) of `values` by the nearest-rank method: the smallest
    value at least `q` % of them do not exceed. `None` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _line(name: str, executions: Iterable[ExecutionFact], runs: Iterable[StageFact]) -> MetricsLine:
    execs, stages = list(executions), list(runs)
    completed = sum(1 for e in execs if e.status == "completed" and not e.error)
    partial = sum(1 for e in execs if e.status == "completed" and e.error)
    failed = sum(1 for e in execs if e.status == "failed")
    cancelled = sum(1 for e in execs if e.status == "cancelled")
    finished = completed + partial + failed + cancelled
    latencies = [
        s
        for e in execs
        if e.status == "completed"
        for s in [_seconds(e.request_created_at or e.created_at, e.finished_at)]
        if s is not None
    ]
    durations = [
        s
        for r in stages
        if r.status in ("succeeded", "failed")
        for s in [_seconds(r.started_at, r.finished_at)]
        if s is not None
    ]
    waits = [float(r.summary.get("queue_ms", 0.0)) / 1000 for r in stages if r.attempt > 0]
    cost = sum((r.cost.total_usd for r in stages), Decimal(0))
    return MetricsLine(
        name,
        executions=len(execs),
        completed=completed,
        partial=partial,
        failed=failed,
        cancelled=cancelled,
        success_rate=_rate(completed, finished),
        failure_rate=_rate(failed, finished),
        partial_rate=_rate(partial, finished),
        cancelled_rate=_rate(cancelled, finished),
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        latency_p99_s=percentile(latencies, 99),
        stage_runs=len(stages),
        attempts=sum(r.attempt for r in stages),
        retries=sum(max(0, r.attempt - 1) for r in stages),
        stage_p50_s=percentile(durations, 50),
        stage_p95_s=percentile(durations, 95),
        stage_p99_s=percentile(durations, 99),
        queue_p50_s=percentile(waits, 50),
        queue_p95_s=percentile(waits, 95),
        queue_p99_s=percentile(waits, 99),
        model_calls=sum(r.usage.model_calls for r in stages),
        prompt_tokens=sum(r.usage.prompt_tokens for r in stages),
        completion_tokens=sum(r.usage.completion_tokens for r in stages),
        cost_usd=cost,
        bytes_stored=sum(r.usage.bytes_stored for r in stages),
        cpu_s=round(sum(float(r.summary.get("cpu_ms", 0.0)) for r in stages) / 1000, 6),
        peak_rss_kb=max((int(r.summary.get("peak_rss_kb", 0)) for r in stages), default=0),
    )


def metrics_lines(
    executions: Sequence[ExecutionFact], runs: Sequence[StageFact], by: str
) -> tuple[MetricsLine, tuple[MetricsLine, ...]]:
    """The total line and one line per group, by name: executions grouped `by` their
    client or template take their stage runs along; stage runs grouped `by` their worker or
    stage kind (action) take the executions they belong to along. Raises `BadInputError`
    for another grouping."""
    if by not in METRICS_GROUPINGS:
        raise BadInputError(
            f"by is one of {', '.join(METRICS_GROUPINGS)}, not {by!r}",
            details={"field": "by", "choices": list(METRICS_GROUPINGS)},
        )
    total = _line("total", executions, runs)
    by_id = {e.id: e for e in executions}
    groups: dict[str, tuple[list[ExecutionFact], list[StageFact]]] = {}
    if by in ("client", "template"):
        key_of = {e.id: (e.client_id or "-") if by == "client" else e.template for e in executions}
        for e in executions:
            groups.setdefault(key_of[e.id], ([], []))[0].append(e)
        for r in runs:
            if r.execution_id in key_of:
                groups[key_of[r.execution_id]][1].append(r)
    else:
        seen: dict[str, set[str]] = {}
        for r in runs:
            name = r.worker if by == "worker" else r.action
            group = groups.setdefault(name, ([], []))
            group[1].append(r)
            if r.execution_id in by_id and r.execution_id not in seen.setdefault(name, set()):
                seen[name].add(r.execution_id)
                group[0].append(by_id[r.execution_id])
    return total, tuple(_line(name, *groups[name]) for name in sorted(groups))


class MetricsService:
    """Factory-wide metrics for staff (`metrics.summary`)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def summary(
        self,
        principal: Principal,
        since: str | None = None,
        until: str | None = None,
        by: str = "template",
    ) -> MetricsReport:
        """The metrics of the executions created from `since` to `until` (ISO-8601 times or
        durations back from now such as `24h`; default: the last 7 days, until now),
        grouped `by` `client`, `template`, `worker` or `stage`.

        Raises `PermissionDeniedError` (not staff), `BadInputError` (a time or grouping
        that is not one).
        """
        if not principal.role.is_staff:
            raise PermissionDeniedError("metrics are for staff")
        return await self.report(since, until, by)

    async def report(
        self, since: str | None = None, until: str | None = None, by: str = "template"
    ) -> MetricsReport:
        """`summary` without a caller, for those who hold the state itself (`aifactory
        stats`). Raises `BadInputError` as `summary` does."""
        now = self.clock.now()
        end = now if until is None else parse_since(until, now)
        start = end - DEFAULT_WINDOW if since is None else parse_since(since, now)
        if start >= end:
            raise BadInputError("since must be before until", details={"field": "since"})
        facts = await self.store.metrics_facts(start, end)
        total, groups = metrics_lines(facts.executions, facts.stage_runs, by)
        return MetricsReport(start, end, by, total, groups)
