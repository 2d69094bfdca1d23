"""The store's administration records on every backend (SQLite in memory and in a file,
PostgreSQL): partial changes that leave the rest of the row alone, the last active admin,
the end of a user's sessions, API keys by id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from aifactory import ConflictError, NotFoundError
from aifactory.models import ApiKeyInfo, Client, Role, Session, Tier, User
from aifactory.state import PostgresStore, SQLiteStore
from aifactory.state._threaded import ThreadedStore

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of this test's own: its URL, or SQLite's `:memory:` or file path."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return ":memory:" if request.param == "sqlite-memory" else str(tmp_path / "s.sqlite3")


def _open(database: str) -> ThreadedStore:
    if database.startswith("postgresql"):
        return PostgresStore(database)
    return SQLiteStore(database)


@pytest.fixture
async def store(database: str) -> AsyncIterator[ThreadedStore]:
    opened = _open(database)
    yield opened
    await opened.aclose()


def _user(ident: str, role: Role = Role.ADMIN, client_id: str | None = None) -> User:
    return User(ident, f"{ident}@factory.example", role, client_id, NOW)


async def test_a_client_change_keeps_its_usage_and_other_fields(store: ThreadedStore) -> None:
    client = Client("cli_1", "Acme", Tier.BASIC, Decimal(10), Decimal(0), "2026-03", NOW)
    await store.add_client(client)
    await store.add_client(
        Client("cli_2", "Globex", Tier.BASIC, Decimal(1), Decimal(0), "2026-03", NOW)
    )
    await store.charge("cli_1", "exec_1", Decimal("2.5"), NOW)
    before, after = await store.change_client(
        "cli_1", tier=Tier.PREMIUM, monthly_budget_usd=Decimal(99)
    )
    assert before.used_this_month_usd == Decimal("2.5")
    assert (after.name, after.tier, after.monthly_budget_usd, after.used_this_month_usd) == (
        "Acme",
        Tier.PREMIUM,
        Decimal(99),
        Decimal("2.5"),
    )
    assert await store.get_client("cli_1") == after
    _, off = await store.change_client("cli_1", active=False)
    assert (await store.get_client("cli_1")).active is False
    assert off.active is False
    with pytest.raises(ConflictError, match="a client named 'gLOBEX' already exists"):
        await store.change_client("cli_1", name="gLOBEX")
    _, same = await store.change_client("cli_1", name="ACME")  # its own name, in other case
    assert same.name == "ACME"
    with pytest.raises(NotFoundError):
        await store.change_client("cli_missing", active=True)


async def test_the_last_active_admin_cannot_be_deactivated(store: ThreadedStore) -> None:
    await store.add_user(_user("usr_a"), "h")
    await store.add_user(_user("usr_b"), "h")
    await store.add_user(_user("usr_m", Role.ACCOUNT_MANAGER), "h")
    _, after = await store.change_user("usr_m", active=False)
    assert after.active is False
    await store.change_user("usr_a", active=False)
    with pytest.raises(ConflictError, match="the last active admin"):
        await store.change_user("usr_b", active=False)
    assert (await store.get_user("usr_b")).active is True
    with pytest.raises(ConflictError, match="already exists"):
        await store.change_user("usr_b", email="USR_A@factory.example")
    _, renamed = await store.change_user("usr_b", email="root@factory.example", display_name="R")
    assert (renamed.email, renamed.display_name, renamed.active) == (
        "root@factory.example",
        "R",
        True,
    )
    assert (await store.find_user("root@factory.example")) == (renamed, "h")


async def test_two_admins_deactivating_each_other_at_once_leave_one(
    store: ThreadedStore, database: str
) -> None:
    """Through two stores (connections) of one database where there can be two: one change
    waits for the other's locks, then sees it."""
    await store.add_user(_user("usr_a"), "h")
    await store.add_user(_user("usr_b"), "h")
    other = store if database == ":memory:" else _open(database)
    outcomes: list[str] = []

    async def deactivate(on: ThreadedStore, ident: str) -> None:
        try:
            await on.change_user(ident, active=False)
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("refused")

    try:
        for _ in range(5):
            outcomes.clear()
            async with anyio.create_task_group() as tg:
                tg.start_soon(deactivate, store, "usr_a")
                tg.start_soon(deactivate, other, "usr_b")
            assert sorted(outcomes) == ["ok", "refused"]
            for ident in ("usr_a", "usr_b"):
                await store.change_user(ident, active=True)
    finally:
        if other is not store:
            await other.aclose()
    await store.change_user("usr_a", active=False)
    active = [u for u in await store.list_users() if u.active]
    assert len(active) == 1


async def test_a_users_sessions_end_but_the_one_spared(store: ThreadedStore) -> None:
    await store.add_user(_user("usr_a"), "h")
    await store.add_user(_user("usr_b"), "h")
    later = NOW + timedelta(hours=24)
    for token, user, expires in (
        ("t1", "usr_a", later),
        ("t2", "usr_a", later),
        ("t3", "usr_a", later),
        ("old", "usr_a", NOW - timedelta(hours=1)),  # expired already: not counted
        ("b1", "usr_b", later),
    ):
        await store.add_session(Session(token, user, NOW - timedelta(hours=2), expires))
    assert await store.revoke_user_sessions("usr_a", NOW, except_token_hash="t2") == 2
    assert [(await store.get_session(t)).revoked_at for t in ("t1", "t3")] == [NOW, NOW]  # type: ignore[union-attr]
    assert (await store.get_session("t2")).revoked_at is None  # type: ignore[union-attr]
    assert (await store.get_session("b1")).revoked_at is None  # type: ignore[union-attr]
    assert await store.revoke_user_sessions("usr_a", NOW) == 1
    assert await store.revoke_user_sessions("usr_a", NOW) == 0


async def test_an_api_key_by_id(store: ThreadedStore) -> None:
    await store.add_user(_user("usr_a"), "h")
    info = ApiKeyInfo("key_1", "abcdefabcdef", "usr_a", None, Role.ADMIN, NOW, name="ops")
    await store.add_api_key(info, "digest")
    assert await store.get_api_key("key_1") == info
    with pytest.raises(NotFoundError, match="no API key 'key_2'"):
        await store.get_api_key("key_2")
