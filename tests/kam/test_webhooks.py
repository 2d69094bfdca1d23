"""Webhooks end to end: a real request through an embedded factory, posted signed to a
receiver on 127.0.0.1 that verifies it; retried after a 500, logged attempt by attempt, never
holding up the settlement; and refused where the fetch policy says no."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import anyio
import pytest

from aifactory import (
    AsyncFactory,
    BadInputError,
    ManualClock,
    PermissionDeniedError,
    RequestStatus,
    Webhook,
    WebhookDelivery,
)
from aifactory._embedded import EmbeddedFactory
from aifactory.config import FactoryConfig
from aifactory.kam.notifier import AccountEvent
from aifactory.orchestrator import RetryPolicy
from aifactory.workers import FetchPolicy
from tests.helpers import People, fast_config, setup_people
from tests.kam.webhook_receiver import Receiver

pytestmark = pytest.mark.anyio

SECRET = secrets.token_urlsafe(32)
QUICK = RetryPolicy(initial_interval_s=0.01, maximum_interval_s=0.05, maximum_attempts=4)
LOOPBACK = FetchPolicy(allow_loopback=True)


def _config(clock: ManualClock, *webhooks: Webhook) -> FactoryConfig:
    return fast_config(clock=clock, fetch_policy=LOOPBACK, webhooks=webhooks)


async def _run_request(people: People) -> str:
    request = await people.ana.requests.create(
        title="Market analysis for AI tools",
        description="Need a comprehensive analysis of pricing, vendors and adoption.",
        urgency="high",
        category="research",
    )
    await people.admin.requests.assign_template(request.id, "quick_research")
    execution = await people.admin.requests.execute(request.id)
    await people.admin.executions.wait(execution.id)
    return request.id


async def _logged(people: People, event_id: str, count: int) -> list[WebhookDelivery]:
    """The delivery log of `event_id`, once it holds `count` attempts (each is recorded
    after its answer)."""
    with anyio.fail_after(10):
        while len(found := await people.admin.webhooks.deliveries(event_id)) < count:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return found


async def test_a_settled_request_is_posted_signed_and_retried_after_a_500() -> None:
    clock = ManualClock()
    with Receiver(SECRET, answers=[500], now=lambda: clock.now().timestamp()) as receiver:
        webhook = Webhook(receiver.url + "?token=abc", SECRET, retry=QUICK)
        async with AsyncFactory.embedded(config=_config(clock, webhook)) as factory:
            people = await setup_people(factory)
            request_id = await _run_request(people)
            first, second = await receiver.wait_for(2)
            event = second.event
            assert event is not None
            assert first.event == event  # the same event, verified both times
            assert (first.status, second.status) == (500, 200)
            ids = {a.headers["x-aifactory-event-id"] for a in (first, second)}
            assert ids == {event["id"]}  # stable across retries: receivers deduplicate on it
            assert first.headers["x-aifactory-timestamp"] == str(int(clock.now().timestamp()))
            assert event["type"] == "request.completed"
            assert event["created_at"] == clock.now().isoformat()
            data = event["data"]
            assert data["request_id"] == request_id
            assert data["client_id"] == people.client_id
            assert data["status"] == "completed"
            [deliverable] = await people.ana.deliverables.list(request_id)
            assert data["deliverables"] == [deliverable.id]

            log = await _logged(people, event["id"], 2)
            assert [(d.attempt, d.status_code, d.delivered, d.error) for d in log] == [
                (2, 200, True, None),
                (1, 500, False, None),
            ]
            assert all(d.event_type == "request.completed" for d in log)
            assert all(d.url == receiver.url for d in log)  # the query (a token) left out
            assert all(d.duration_s >= 0 for d in log)
            assert all(d.at == clock.now() for d in log)
            # Staff only.
            with pytest.raises(PermissionDeniedError, match=r"may not call webhooks\.deliveries"):
                await people.ana.webhooks.deliveries()
        # Delivered once: nothing more arrived, and the secret was never sent.
        assert receiver.arrived == 2
        assert all(SECRET not in str(a.headers) for a in receiver.answered)


async def test_a_slow_receiver_does_not_hold_up_the_settlement() -> None:
    clock = ManualClock()
    with Receiver(SECRET, delay_s=2.0, now=lambda: clock.now().timestamp()) as receiver:
        webhook = Webhook(receiver.url, SECRET, events=["request.completed"], retry=QUICK)
        async with AsyncFactory.embedded(config=_config(clock, webhook)) as factory:
            people = await setup_people(factory)
            request_id = await _run_request(people)
            with anyio.fail_after(1.5):  # well within the receiver's 2 s
                while not (notes := await people.ana.notifications.list()):  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            assert (await people.ana.requests.get(request_id)).status is RequestStatus.COMPLETED
            assert [n.kind for n in notes] == ["request.completed"]
            assert receiver.answered == []  # the webhook is still on its way
            [arrival] = await receiver.wait_for(1)
            assert arrival.event is not None
            assert arrival.event["data"]["request_id"] == request_id
            [logged] = await _logged(people, arrival.event["id"], 1)
            assert logged.delivered
            assert logged.duration_s >= 1.9


async def test_closing_the_factory_waits_a_bounded_time_for_deliveries() -> None:
    clock = ManualClock()
    with Receiver(SECRET, delay_s=5.0, now=lambda: clock.now().timestamp()) as receiver:
        webhook = Webhook(receiver.url, SECRET, retry=QUICK, close_timeout_s=0.3)
        factory = AsyncFactory.embedded(config=_config(clock, webhook))
        async with factory:
            people = await setup_people(factory)
            await _run_request(people)
            with anyio.fail_after(5):
                while receiver.arrived == 0:  # noqa: ASYNC110 - another thread's counter
                    await anyio.sleep(0.02)
            started = anyio.current_time()
        assert anyio.current_time() - started < 2.0  # not the receiver's 5 s


def _event(kind: str = "request.completed", ident: str = "evt_1") -> AccountEvent:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return AccountEvent(ident, kind, at, "cli_1", "done", {"request_id": "req_1"})


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/hook", "http://[::1]:9/hook", "http://10.0.0.1/hook"],
)
async def test_a_webhook_to_a_private_address_is_refused_when_the_factory_opens(
    url: str,
) -> None:
    with pytest.raises(BadInputError, match="refusing to connect"):
        EmbeddedFactory(fast_config(webhooks=[Webhook(url, SECRET)]))
    if "127.0.0.1" in url:  # allowed when the policy allows loopback
        factory = EmbeddedFactory(
            fast_config(fetch_policy=LOOPBACK, webhooks=[Webhook(url, SECRET)])
        )
        await factory.store.aclose()


async def test_a_name_that_resolves_to_loopback_is_refused_at_delivery() -> None:
    with Receiver(SECRET) as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        config = fast_config(webhooks=[Webhook(url, SECRET, retry=QUICK)])
        async with EmbeddedFactory(config) as runtime:
            [notifier] = runtime.webhooks.notifiers
            record = await notifier.deliver(_event())
            assert not record.delivered
            assert record.status_code is None
            assert record.error is not None
            assert record.error.startswith("unsafe_url: refusing to connect to localhost")
            # Refused, not retried, and recorded.
            assert await runtime.store.list_webhook_deliveries("evt_1") == [record]
        assert receiver.arrived == 0


async def test_only_the_chosen_events_are_posted_and_a_full_queue_drops() -> None:
    clock = ManualClock()
    with Receiver(SECRET, delay_s=0.3, now=lambda: clock.now().timestamp()) as receiver:
        webhook = Webhook(
            receiver.url, SECRET, events="budget.threshold", max_pending=1, concurrency=1
        )
        runtime = EmbeddedFactory(_config(clock, webhook))
        [notifier] = runtime.webhooks.notifiers
        # Not open yet: dropped, and recorded as such.
        await notifier.publish(_event("budget.threshold", "evt_0"))
        async with runtime:
            await anyio.sleep(0.05)  # the one delivery task waits for events
            await notifier.publish(_event("request.completed", "evt_x"))  # not chosen
            for ident in ("evt_1", "evt_2", "evt_3"):  # in flight, queued, dropped
                await notifier.publish(_event("budget.threshold", ident))
            arrivals = await receiver.wait_for(2)
            with anyio.fail_after(5):
                while len(log := await runtime.store.list_webhook_deliveries()) < 4:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
    assert [a.event["id"] for a in arrivals if a.event] == ["evt_1", "evt_2"]
    assert receiver.arrived == 2
    found = {d.event_id: d for d in log}
    assert sorted(found) == ["evt_0", "evt_1", "evt_2", "evt_3"]
    assert found["evt_0"].error == "dropped: the webhook notifier is not running"
    assert found["evt_3"].error == "dropped: 1 events wait already"
    assert (found["evt_3"].attempt, found["evt_3"].delivered) == (0, False)
    assert found["evt_1"].delivered
    assert found["evt_2"].delivered


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example.com/x", "scheme"),
        ("http://user:pw@hooks.example.com/x", "credentials"),
        ("http:///x", "no host"),
        ("https://hooks.example.com/x#top", "fragment"),
        ("http://0x7f000001/x", "non-canonical"),
        ("http://169.254.169.254/latest", "link-local"),
        ("not a url", "scheme"),
    ],
)
def test_bad_webhook_urls_are_refused_at_configuration(url: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        Webhook(url, SECRET)


def test_a_webhook_needs_a_real_secret_and_known_events() -> None:
    with pytest.raises(BadInputError, match="at least 16 characters"):
        Webhook("https://hooks.example.com/x", "short")
    with pytest.raises(BadInputError, match=r"request\.exploded"):
        Webhook("https://hooks.example.com/x", SECRET, events=["request.exploded"])
    webhook = Webhook("https://hooks.example.com/x?token=t0k", SECRET)
    assert SECRET not in repr(webhook)
    assert webhook.display_url == "https://hooks.example.com/x"


def test_the_environment_names_a_webhook_with_its_secret() -> None:
    env = {
        "AIFACTORY_WEBHOOK_URL": "https://hooks.example.com/aifactory",
        "AIFACTORY_WEBHOOK_SECRET": SECRET,
    }
    [webhook] = FactoryConfig.from_environment(environ=env).webhooks
    assert webhook == Webhook("https://hooks.example.com/aifactory", SECRET)
    assert FactoryConfig.from_environment(environ={}).webhooks == ()
    for name in env:
        with pytest.raises(BadInputError, match="set both or neither"):
            FactoryConfig.from_environment(environ={name: env[name]})
