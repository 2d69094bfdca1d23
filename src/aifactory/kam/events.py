"""The account events settlement announces: a request settled, a budget threshold reached.

| type | when | `data` |
|---|---|---|
| `request.completed` | every stage succeeded | `client_id`, `request_id`, `execution_id`, `title`, `status`, `deliverables` (ids), `cost_usd`, `error` (`None`) |
| `request.partially_completed` | it completed without some optional stage (`allow_partial`) | the same; `status` is `completed`, `error` says what is missing |
| `request.failed` | it failed | the same; `error` says why |
| `request.cancelled` | it was cancelled | the same |
| `budget.threshold` | a charge took the client's usage this month to 80 % or 100 % of its monthly budget (once per client, month and threshold) | `client_id`, `month` (`YYYY-MM`), `threshold_percent`, `used_usd`, `budget_usd` |

Amounts are decimal strings. In-app notifications carry the same type (as their `kind`) and
data.
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from .._exceptions import AIFactoryError
from ..models import Deliverable, Execution, Request, RequestStatus
from .notifier import AccountEvent, Notifiers, logger

__all__ = [
    "BUDGET_THRESHOLD",
    "BUDGET_THRESHOLDS",
    "EVENT_TYPES",
    "REQUEST_CANCELLED",
    "REQUEST_COMPLETED",
    "REQUEST_FAILED",
    "REQUEST_PARTIALLY_COMPLETED",
    "announce_settlement",
]

REQUEST_COMPLETED = "request.completed"
REQUEST_PARTIALLY_COMPLETED = "request.partially_completed"
REQUEST_FAILED = "request.failed"
REQUEST_CANCELLED = "request.cancelled"
BUDGET_THRESHOLD = "budget.threshold"
#: Every event type, in the order of the table above.
EVENT_TYPES = (
    REQUEST_COMPLETED,
    REQUEST_PARTIALLY_COMPLETED,
    REQUEST_FAILED,
    REQUEST_CANCELLED,
    BUDGET_THRESHOLD,
)
#: The shares of a client's monthly budget (percent) whose reaching is announced.
BUDGET_THRESHOLDS = (80, 100)


def _request_event(
    notifiers: Notifiers,
    request: Request,
    execution: Execution,
    status: RequestStatus,
    deliverables: Sequence[Deliverable],
    at: datetime,
) -> AccountEvent:
    title, count = request.title, len(deliverables)
    if status is RequestStatus.COMPLETED and execution.error:  # partly (allow_partial)
        kind = REQUEST_PARTIALLY_COMPLETED
        message = (
            f"Your request “{title}” is partly complete: {count} deliverable(s) ready. "
            f"{execution.error}"
        )
    elif status is RequestStatus.COMPLETED:
        kind = REQUEST_COMPLETED
        message = f"Your request “{title}” is complete: {count} deliverable(s) ready."
    elif status is RequestStatus.CANCELLED:
        kind = REQUEST_CANCELLED
        message = f"Your request “{title}” was cancelled."
    else:
        kind = REQUEST_FAILED
        message = f"Your request “{title}” failed: {execution.error}"
    data = {
        "client_id": request.client_id,
        "request_id": request.id,
        "execution_id": execution.id,
        "title": title,
        "status": status.value,
        "deliverables": [d.id for d in deliverables],
        "cost_usd": str(execution.cost.total_usd),
        "error": execution.error,
    }
    return AccountEvent(notifiers.ids.new("evt"), kind, at, request.client_id, message, data)


async def _budget_events(notifiers: Notifiers, client_id: str, at: datetime) -> list[AccountEvent]:
    """The thresholds the client's usage has reached this month and nobody announced yet
    (each claimed here, so that no other settlement announces it again)."""
    client = await notifiers.store.get_client(client_id)
    month = at.strftime("%Y-%m")  # as `Store.charge` counts months
    budget, used = client.monthly_budget_usd, client.used_in(month)
    events = []
    for percent in BUDGET_THRESHOLDS:
        if budget <= 0 or used < budget * Decimal(percent) / 100:
            continue
        if not await notifiers.store.claim_budget_threshold(client_id, month, percent, at):
            continue
        message = (
            f"Your organisation has used {percent} % of its monthly budget: {used} of {budget} USD."
        )
        data = {
            "client_id": client_id,
            "month": month,
            "threshold_percent": percent,
            "used_usd": str(used),
            "budget_usd": str(budget),
        }
        events.append(
            AccountEvent(notifiers.ids.new("evt"), BUDGET_THRESHOLD, at, client_id, message, data)
        )
    return events


async def announce_settlement(
    notifiers: Notifiers,
    request: Request,
    execution: Execution,
    status: RequestStatus,
    deliverables: Sequence[Deliverable],
    charged: Decimal,
    at: datetime,
) -> None:
    """Announce a request settled at `at`, then any budget threshold its charge (`charged`)
    made the client reach this month. Never raises for a notifier or a threshold check that
    failed (logged on `aifactory.kam`): the settlement stands whatever happens here."""
    await notifiers.publish(_request_event(notifiers, request, execution, status, deliverables, at))
    if charged <= 0:
        return
    try:
        reached = await _budget_events(notifiers, request.client_id, at)
    except AIFactoryError as exc:
        logger.warning(
            "budget thresholds of client %s not checked: %s (%s)",
            request.client_id,
            type(exc).__name__,
            exc.code,
        )
        return
    for event in reached:
        await notifiers.publish(event)
