"""What a client used in a month: its executions, model calls, tokens and costs.

`ModelUsage` is one model call made for a request outside any execution (the template
recommendation), as the provider billed it; the calls of stage attempts are counted in their
stage runs' `Usage` and `Cost`. `UsageReport` sums both for one client and month, by
template and by worker; `to_csv` writes it as a spreadsheet reads it.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

import attrs

from ._display import decimal_repr, iso_repr

__all__ = ["ModelUsage", "UsageLine", "UsageReport"]


@attrs.frozen
class ModelUsage:
    """One model call made for request `request_id` of client `client_id`, outside any
    execution: `purpose` says what for (`recommendation`); `requests` is how many billed
    requests it took (2 after a re-ask); `outcome` is `ok`, `unusable` or `cut short` (see
    `aifactory.llm.metering.ModelCall`)."""

    id: str
    client_id: str
    request_id: str | None
    purpose: str
    model: str
    outcome: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal = attrs.field(repr=decimal_repr)
    at: datetime = attrs.field(repr=iso_repr)


@attrs.frozen
class UsageLine:
    """The usage of one group: the executions of a template, the stage runs of a worker, or
    the recommendations (`name` says which). `executions` counts the executions the line
    covers; `model_calls` the billed model requests; costs are USD."""

    name: str
    executions: int = 0
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_usd: Decimal = attrs.field(default=Decimal(0), repr=decimal_repr)
    storage_usd: Decimal = attrs.field(default=Decimal(0), repr=decimal_repr)
    compute_usd: Decimal = attrs.field(default=Decimal(0), repr=decimal_repr)

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def total_usd(self) -> Decimal:
        """Model, storage and compute cost together."""
        return self.model_usd + self.storage_usd + self.compute_usd

    def __add__(self, other: UsageLine) -> UsageLine:
        return UsageLine(
            self.name,
            self.executions + other.executions,
            self.model_calls + other.model_calls,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.model_usd + other.model_usd,
            self.storage_usd + other.storage_usd,
            self.compute_usd + other.compute_usd,
        )


_CSV_COLUMNS = (
    "client_id",
    "month",
    "group",
    "name",
    "executions",
    "model_calls",
    "prompt_tokens",
    "completion_tokens",
    "model_usd",
    "storage_usd",
    "compute_usd",
    "total_usd",
)


@attrs.frozen
class UsageReport:
    """A client's usage in `month` (`YYYY-MM`, UTC).

    An execution counts in the month it was created, with everything its stages spent (every
    attempt, failed and cancelled ones too); a recommendation in the month it was made.
    `total` sums `recommendations` and every template line; `by_template` and `by_worker`
    split the executions' part two ways (a worker line's `executions` counts the executions
    it worked for). `by_status` counts the executions by status. `charged_usd` is what the
    client's budget was charged in the month, which differs from `total.total_usd` only by
    an execution that settled in another month than it began; `budget_usd` is the client's
    monthly budget.
    """

    client_id: str
    month: str
    total: UsageLine
    recommendations: UsageLine
    by_template: tuple[UsageLine, ...] = ()
    by_worker: tuple[UsageLine, ...] = ()
    by_status: dict[str, int] = attrs.field(factory=dict)
    charged_usd: Decimal = attrs.field(default=Decimal(0), repr=decimal_repr)
    budget_usd: Decimal = attrs.field(default=Decimal(0), repr=decimal_repr)

    def to_csv(self) -> str:
        """The report as CSV: a header, then one row per line (`group` is `total`,
        `recommendations`, `template` or `worker`), amounts as plain decimals."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(_CSV_COLUMNS)
        groups = [
            ("total", self.total),
            ("recommendations", self.recommendations),
            *(("template", line) for line in self.by_template),
            *(("worker", line) for line in self.by_worker),
        ]
        for group, line in groups:
            writer.writerow(
                (
                    self.client_id,
                    self.month,
                    group,
                    line.name,
                    line.executions,
                    line.model_calls,
                    line.prompt_tokens,
                    line.completion_tokens,
                    f"{line.model_usd:f}",
                    f"{line.storage_usd:f}",
                    f"{line.compute_usd:f}",
                    f"{line.total_usd:f}",
                )
            )
        return out.getvalue()
