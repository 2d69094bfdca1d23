"""Factory-wide metrics over a time window: one line per group (client, template, worker or
stage kind) and one in total."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import attrs

from ._display import decimal_repr, iso_repr

__all__ = ["METRICS_GROUPINGS", "MetricsLine", "MetricsReport"]

#: What a metrics report may group by: the execution's client or template, the stage's
#: worker or kind (its action).
METRICS_GROUPINGS = ("client", "template", "worker", "stage")


@attrs.frozen
class MetricsLine:
    """The figures of one group of executions and stage runs (`name` says which group).

    Executions: how many, and how they ended (`completed` in full, `partial`: completed
    with something failed, `failed`, `cancelled`; the rest are still under way), their
    rates among those finished, and the latency from the request's creation (or the
    execution's, without a request) to delivery, of those delivered (completed or partial).
    Stage runs: how many, their attempts and retries (attempts after the first), the
    duration of each run's last attempt and its queue wait (schedule-to-start) in seconds;
    model calls, tokens, cost in USD and bytes stored; the CPU seconds their committed
    attempts used and the highest peak memory (KiB) a worker process reported. A
    percentile is `None` when there is nothing to measure.
    """

    name: str
    executions: int = 0
    completed: int = 0
    partial: int = 0
    failed: int = 0
    cancelled: int = 0
    success_rate: float | None = None
    failure_rate: float | None = None
    partial_rate: float | None = None
    cancelled_rate: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_p99_s: float | None = None
    stage_runs: int = 0
    attempts: int = 0
    retries: int = 0
    stage_p50_s: float | None = None
    stage_p95_s: float | None = None
    stage_p99_s: float | None = None
    queue_p50_s: float | None = None
    queue_p95_s: float | None = None
    queue_p99_s: float | None = None
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = attrs.field(default=Decimal(0), repr=decimal_repr)
    bytes_stored: int = 0
    cpu_s: float = 0.0
    peak_rss_kb: int = 0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@attrs.frozen
class MetricsReport:
    """The factory's metrics for executions created from `since` to `until`, grouped `by`
    client, template, worker or stage (kind), with the whole factory's in `total`."""

    since: datetime = attrs.field(repr=iso_repr)
    until: datetime = attrs.field(repr=iso_repr)
    by: str
    total: MetricsLine
    groups: tuple[MetricsLine, ...] = ()
