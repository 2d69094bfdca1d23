"""The store's webhook records on every backend (SQLite in memory and in a file,
PostgreSQL): the delivery log, newest first, and budget thresholds claimed once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from aifactory.models import WebhookDelivery
from aifactory.state import PostgresStore, SQLiteStore
from aifactory.state._threaded import ThreadedStore

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ThreadedStore]:
    if request.param == "postgres":
        opened: ThreadedStore = PostgresStore(request.getfixturevalue("postgres_url"))
    elif request.param == "sqlite-file":
        opened = SQLiteStore(tmp_path / "s.sqlite3")
    else:
        opened = SQLiteStore(":memory:")
    yield opened
    await opened.aclose()


def _attempt(
    ident: str, event_id: str, attempt: int, seconds: float, **rest: object
) -> WebhookDelivery:
    return WebhookDelivery(
        ident,
        event_id,
        "request.completed",
        "https://hooks.example.com/aifactory",
        attempt,
        NOW + timedelta(seconds=seconds),
        0.25,
        **rest,  # type: ignore[arg-type]
    )


async def test_the_delivery_log_lists_attempts_newest_first(store: ThreadedStore) -> None:
    attempts = [
        _attempt("whd_1", "evt_1", 1, 0, status_code=503),
        _attempt("whd_2", "evt_2", 1, 1, error="fetch_failed: ConnectError"),
        _attempt("whd_3", "evt_1", 2, 2, status_code=200, delivered=True),
    ]
    for attempt in attempts:
        await store.add_webhook_delivery(attempt)
    assert await store.list_webhook_deliveries() == attempts[::-1]
    assert await store.list_webhook_deliveries("evt_1") == [attempts[2], attempts[0]]
    assert await store.list_webhook_deliveries(limit=1) == [attempts[2]]
    assert await store.list_webhook_deliveries("evt_9") == []
    # Read back as written: the flag a boolean, the missing answer None.
    [failed] = await store.list_webhook_deliveries("evt_2")
    assert failed.delivered is False
    assert failed.status_code is None
    assert failed.error == "fetch_failed: ConnectError"


async def test_a_budget_threshold_is_claimed_once_per_client_month_and_percent(
    store: ThreadedStore,
) -> None:
    assert await store.claim_budget_threshold("cli_1", "2026-03", 80, NOW)
    assert not await store.claim_budget_threshold("cli_1", "2026-03", 80, NOW)
    assert await store.claim_budget_threshold("cli_1", "2026-03", 100, NOW)
    assert await store.claim_budget_threshold("cli_1", "2026-04", 80, NOW)
    assert await store.claim_budget_threshold("cli_2", "2026-03", 80, NOW)


async def test_concurrent_claims_of_one_threshold_give_it_to_one(store: ThreadedStore) -> None:
    won: list[bool] = []

    async def claim() -> None:
        won.append(await store.claim_budget_threshold("cli_1", "2026-03", 80, NOW))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(claim)
    assert sorted(won) == [False, False, False, False, True]
