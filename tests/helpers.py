"""Shared test helpers: fast configs and the standard people of the flow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from aifactory import AsyncFactory, AsyncSession, FactoryConfig, ManualClock, SequentialIds
from aifactory.auth import PasswordHasher
from aifactory.orchestrator import RetryPolicy

ADMIN = "admin@factory.example"
ANA = "ana@acme.example"
ANA_PASSWORD = "ana-password-123"
BOB = "bob@globex.example"
BOB_PASSWORD = "bob-password-456"

#: Set by the `state_backend` fixture (conftest) when the suite runs on PostgreSQL
#: (`AIFACTORY_TEST_STATE=postgresql`): the schema this test's factories keep their state in.
TEST_STATE_URL: str | None = None
#: The stores tests opened on it without closing them (the orchestrator `Harness`'s): the
#: fixture closes them, so that their connections do not pile up on the server.
TEST_STORES: list[Any] = []

# Argon2 at its cheapest: tests hash dozens of passwords; production keeps the defaults.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def fast_config(home: Path | None = None, **changes: Any) -> FactoryConfig:
    """A deterministic, fast config: manual clock, sequential ids, cheap hashing, quick retries."""
    config = FactoryConfig(
        home=home,
        clock=ManualClock(),
        ids=SequentialIds(),
        password_hasher=FAST_HASHER,
        retry=RetryPolicy(initial_interval_s=0.001, maximum_interval_s=0.01),
        # The clock stands still in tests, so rate buckets would never refill; the limits
        # have their own test.
        api_rate_limits=False,
        state_url=TEST_STATE_URL,
    )
    return attrs.evolve(config, **changes)


@attrs.frozen
class People:
    """The admin and one client user of a fresh factory, logged in."""

    admin: AsyncSession
    admin_password: str
    ana: AsyncSession
    client_id: str


async def setup_people(factory: AsyncFactory, tier: str = "standard", budget: Any = 50) -> People:
    """Bootstrap an admin, create client Acme with user Ana, and log both in."""
    password = await factory.bootstrap_admin(ADMIN)
    admin = await factory.login(ADMIN, password, login_type="admin")
    acme = await admin.clients.create(name="Acme", tier=tier, monthly_budget_usd=budget)
    await admin.users.create(email=ANA, password=ANA_PASSWORD, role="client", client_id=acme.id)
    ana = await factory.login(ANA, ANA_PASSWORD)
    return People(admin, password, ana, acme.id)
