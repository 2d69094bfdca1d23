"""Many notifiers: in-app always kept, a failing notifier stops neither the others nor the
settlement, and budget thresholds are announced once each."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from aifactory import AccountEvent, AsyncFactory, RequestStatus, SequentialIds, User
from aifactory.kam.events import announce_settlement
from aifactory.kam.notifier import Notifiers
from aifactory.models import (
    Client,
    Cost,
    Execution,
    ExecutionStatus,
    Request,
    Role,
    StageSpec,
    Template,
    Tier,
    Urgency,
)
from aifactory.state import open_store
from tests.helpers import ANA, fast_config, setup_people

pytestmark = pytest.mark.anyio

LEAKY = "token=s3cr3t-in-a-message"


class Recording:
    """A per-user notifier that keeps what it is told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str, dict[str, Any]]] = []

    async def notify(self, user: User, kind: str, message: str, data: dict[str, Any]) -> None:
        self.told.append((user.email, kind, data))


class Broken:
    """A per-user notifier whose service is down (its error quotes a token)."""

    async def notify(self, user: User, kind: str, message: str, data: dict[str, Any]) -> None:
        raise RuntimeError(f"cannot reach https://chat.example.com/?{LEAKY}")


class RecordingEvents:
    """An event notifier (a webhook's shape) that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[AccountEvent] = []

    async def publish(self, event: AccountEvent) -> None:
        self.events.append(event)


class BrokenEvents:
    async def publish(self, event: AccountEvent) -> None:
        raise ConnectionError(LEAKY)


async def test_a_failing_notifier_stops_neither_the_others_nor_the_settlement(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before, after, events, passed = Recording(), Recording(), RecordingEvents(), Recording()
    config = fast_config(notifiers=[before, Broken(), BrokenEvents(), events, after])
    caplog.set_level(logging.WARNING, logger="aifactory.kam")
    async with AsyncFactory.embedded(config=config, notifier=passed) as factory:
        people = await setup_people(factory)
        request = await people.ana.requests.create(
            title="Market analysis", description="Pricing and vendors.", category="research"
        )
        await people.admin.requests.assign_template(request.id, "quick_research")
        execution = await people.admin.requests.execute(request.id)
        await people.admin.executions.wait(execution.id)
        assert (await people.ana.requests.get(request.id)).status is RequestStatus.COMPLETED
        [note] = await people.ana.notifications.list()  # in-app, kept with the others
    assert note.kind == "request.completed"
    for recording in (before, after, passed):  # before and after the broken ones
        assert [(email, kind) for email, kind, _ in recording.told] == [(ANA, "request.completed")]
        assert recording.told[0][2] == note.data
    [event] = events.events  # once, not once per user
    assert event.type == "request.completed"
    assert event.client_id == people.client_id
    assert event.data == note.data
    assert event.data["request_id"] == request.id
    failures = [r.getMessage() for r in caplog.records if r.name == "aifactory.kam"]
    assert len(failures) == 2
    assert "notifier Broken failed on request.completed event" in failures[0]
    assert failures[0].endswith("RuntimeError")
    assert failures[1].endswith("ConnectionError")
    assert all(LEAKY not in text for text in caplog.messages)


NOW = datetime(2026, 3, 10, tzinfo=UTC)
TEMPLATE = Template("t", "T", "", "x", (Tier.STANDARD,), (StageSpec("a", "w"),))


async def test_budget_thresholds_are_announced_at_80_and_100_percent_once_each() -> None:
    config = fast_config()
    store = open_store(config.database)
    try:
        client = Client("cli_1", "Acme", Tier.STANDARD, Decimal(100), Decimal(0), "2026-03", NOW)
        await store.add_client(client)
        user = User("usr_1", ANA, Role.CLIENT, client.id, NOW)
        await store.add_user(user, "hash")
        events = RecordingEvents()
        notifiers = Notifiers(store, config.clock, SequentialIds(), [events])

        async def settle(ident: str, cost: str, at: datetime = NOW) -> list[tuple[str, Any]]:
            """Charge and announce one settled request; the budget events it caused."""
            execution = Execution(
                f"exec_{ident}",
                f"req_{ident}",
                client.id,
                TEMPLATE,
                {},
                ExecutionStatus.COMPLETED,
                at,
                at,
                cost=Cost(compute_usd=Decimal(cost)),
            )
            request = Request(
                f"req_{ident}",
                client.id,
                user.id,
                "A request",
                "",
                Urgency.NORMAL,
                "research",
                RequestStatus.COMPLETED,
                at,
                at,
            )
            charged = await store.charge(client.id, execution.id, Decimal(cost), at)
            seen = len(events.events)
            await announce_settlement(
                notifiers, request, execution, RequestStatus.COMPLETED, [], charged, at
            )
            assert events.events[seen].type == "request.completed"
            return [
                (e.data["threshold_percent"], e.data["month"]) for e in events.events[seen + 1 :]
            ]

        assert await settle("1", "50") == []  # 50 %
        assert await settle("2", "35") == [(80, "2026-03")]  # 85 %
        assert await settle("3", "5") == []  # 90 %: told already
        assert await settle("4", "20") == [(100, "2026-03")]  # 110 %
        assert await settle("5", "1") == []
        # A new month starts from nothing: both again, in one charge.
        assert await settle("6", "120", datetime(2026, 4, 2, tzinfo=UTC)) == [
            (80, "2026-04"),
            (100, "2026-04"),
        ]
        [reached, *_] = [e for e in events.events if e.type == "budget.threshold"]
        assert reached.data == {
            "client_id": "cli_1",
            "month": "2026-03",
            "threshold_percent": 80,
            "used_usd": "85",
            "budget_usd": "100",
        }
        assert reached.client_id == client.id
        # The client's users hear of it in the app too.
        kinds = [n.kind for n in await store.list_notifications(user.id)]
        assert kinds.count("budget.threshold") == 4
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("status", "error", "kind", "told"),
    [
        (RequestStatus.COMPLETED, None, "request.completed", "is complete: 0 deliverable(s)"),
        (
            RequestStatus.COMPLETED,
            "completed partially: stage report failed",
            "request.partially_completed",
            "is partly complete",
        ),
        (RequestStatus.FAILED, "stage outline failed", "request.failed", "failed: stage outline"),
        (RequestStatus.CANCELLED, None, "request.cancelled", "was cancelled"),
    ],
)
async def test_each_settlement_has_its_own_kind(
    status: RequestStatus, error: str | None, kind: str, told: str
) -> None:
    config = fast_config()
    store = open_store(config.database)
    try:
        await store.add_client(
            Client("cli_1", "Acme", Tier.STANDARD, Decimal(100), Decimal(0), "2026-03", NOW)
        )
        user = User("usr_1", ANA, Role.CLIENT, "cli_1", NOW)
        await store.add_user(user, "hash")
        away = User("usr_2", "gone@acme.example", Role.CLIENT, "cli_1", NOW, active=False)
        await store.add_user(away, "hash")
        events = RecordingEvents()
        notifiers = Notifiers(store, config.clock, SequentialIds(), [events])
        finished = (
            ExecutionStatus.FAILED if status is RequestStatus.FAILED else ExecutionStatus.COMPLETED
        )
        execution = Execution(
            "exec_1", "req_1", "cli_1", TEMPLATE, {}, finished, NOW, NOW, error=error
        )
        request = Request(
            "req_1", "cli_1", user.id, "Pricing", "", Urgency.NORMAL, "research", status, NOW, NOW
        )
        await announce_settlement(notifiers, request, execution, status, [], Decimal(0), NOW)
        [event] = events.events
        assert event.type == kind
        assert event.data["status"] == status.value
        assert event.data["error"] == error
        [note] = await store.list_notifications(user.id)
        assert note.kind == kind
        assert told in note.message
        assert await store.list_notifications(away.id) == []  # inactive users are not told
    finally:
        await store.aclose()
