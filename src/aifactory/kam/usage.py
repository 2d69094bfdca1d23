"""`UsageService`: what a client used in a month, as a report and as CSV.

The report is made from what the factory records anyway: each execution's and stage run's
usage and cost (every attempt's model calls included, as the provider billed them), the
ledger of model calls made outside executions (template recommendations), and the charges
against the client's budget. Staff read any client's; a client's users their own.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

import attrs

from .._clock import Clock
from .._exceptions import BadInputError, NotFoundError
from ..models import Cost, Principal, Usage, UsageLine, UsageReport
from ..state import SpentBy, Store

__all__ = ["UsageService", "month_bounds"]

_MONTH = re.compile(r"(\d{4})-(\d{2})")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The first instant of `month` (`YYYY-MM`, UTC) and of the month after.

    Raises `BadInputError` for anything but a real month."""
    found = _MONTH.fullmatch(month) if isinstance(month, str) else None
    if found is None or not 1 <= int(found[2]) <= 12 or int(found[1]) < 1:
        raise BadInputError(
            f"a month is written YYYY-MM, not {month!r}", details={"field": "month"}
        )
    year, number = int(found[1]), int(found[2])
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _line(name: str, usage: Usage, cost: Cost, executions: int = 0) -> UsageLine:
    return UsageLine(
        name,
        executions,
        usage.model_calls,
        usage.prompt_tokens,
        usage.completion_tokens,
        cost.llm_usd,
        cost.storage_usd,
        cost.compute_usd,
    )


def _grouped(spent: Iterable[SpentBy]) -> tuple[UsageLine, ...]:
    """One line per name, by name; a line's `executions` counts the distinct executions."""
    lines: dict[str, UsageLine] = {}
    seen: dict[str, set[str]] = {}
    for item in spent:
        line = _line(item.name, item.usage, item.cost)
        lines[item.name] = lines[item.name] + line if item.name in lines else line
        seen.setdefault(item.name, set()).add(item.execution_id)
    return tuple(attrs.evolve(lines[name], executions=len(seen[name])) for name in sorted(lines))


class UsageService:
    """Usage reports per client and month."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def report(
        self, principal: Principal, client_id: str, month: str | None = None
    ) -> UsageReport:
        """What client `client_id` used in `month` (`YYYY-MM`, UTC; default this month).

        Raises `BadInputError` (not a month), `NotFoundError` (no such client, or not the
        caller's own for a client user).
        """
        if not principal.role.is_staff and principal.client_id != client_id:
            raise NotFoundError(f"no client {client_id!r}", details={"id": client_id})
        month = self.clock.now().strftime("%Y-%m") if month is None else month
        start, end = month_bounds(month)
        client = await self.store.get_client(client_id)
        facts = await self.store.usage_facts(client_id, start, end)
        templates = _grouped(facts.executions)
        recommendations = UsageLine("recommendations")
        for call in facts.model_usage:
            recommendations += UsageLine(
                "recommendations",
                0,
                call.requests,
                call.prompt_tokens,
                call.completion_tokens,
                call.cost_usd,
            )
        total = UsageLine("total")
        for line in (recommendations, *templates):
            total += line
        return UsageReport(
            client_id,
            month,
            total=attrs.evolve(total, executions=len(facts.executions)),
            recommendations=recommendations,
            by_template=templates,
            by_worker=_grouped(facts.stage_runs),
            by_status=dict(sorted(Counter(e.status for e in facts.executions).items())),
            charged_usd=facts.charged_usd,
            budget_usd=client.monthly_budget_usd,
        )

    async def report_csv(
        self, principal: Principal, client_id: str, month: str | None = None
    ) -> bytes:
        """`report` as CSV (UTF-8; see `UsageReport.to_csv`). Raises as `report` does."""
        return (await self.report(principal, client_id, month)).to_csv().encode()
