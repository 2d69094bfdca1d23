"""Factory-wide metrics (`session.metrics`, staff)."""

from __future__ import annotations

from datetime import datetime

from ..models import MetricsReport
from ._base import AsyncResource

__all__ = ["AsyncMetrics"]


def _when(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class AsyncMetrics(AsyncResource):
    """Factory-wide metrics: latency, outcomes, stages, queue waits, usage and cost (staff)."""

    async def summary(
        self,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        by: str = "template",
    ) -> MetricsReport:
        """The metrics of the executions created from `since` to `until` (times, or
        durations back from now such as `"24h"`; default: the last 7 days), grouped `by`
        `"client"`, `"template"`, `"worker"` or `"stage"` (kind), with the total. Raises
        `PermissionDeniedError` (not staff), `BadInputError`."""
        return await self._call("metrics.summary", since=_when(since), until=_when(until), by=by)
