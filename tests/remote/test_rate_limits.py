"""Tier rate limits over HTTP: a client's requests a minute, refilled as time passes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from aifactory import ManualClock
from aifactory._embedded import EmbeddedFactory
from aifactory.server import factory_app
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, BOB, BOB_PASSWORD, fast_config

pytestmark = pytest.mark.anyio


async def test_clients_are_held_to_their_tiers_pace_and_staff_are_not() -> None:
    config = fast_config(api_rate_limits=True)
    clock = config.clock
    assert isinstance(clock, ManualClock)
    async with EmbeddedFactory(config) as runtime:
        password = await runtime.accounts.bootstrap_admin(ADMIN)
        transport = httpx.ASGITransport(app=factory_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://f.test") as client:

            async def login(user: str, secret: str, kind: str = "client") -> dict[str, str]:
                body = {"username": user, "password": secret, "loginType": kind}
                token = (await client.post("/api/auth/login", json=body)).json()["sessionToken"]
                return {"x-bitware-session-token": token}

            admin = await login(ADMIN, password, "admin")
            for name, tier, email, secret in (
                ("Acme", "basic", ANA, ANA_PASSWORD),
                ("Globex", "standard", BOB, BOB_PASSWORD),
            ):
                body = {"name": name, "tier": tier, "monthly_budget_usd": "5"}
                c = (await client.post("/api/kam/clients", headers=admin, json=body)).json()
                user = {"email": email, "password": secret, "client_id": c["id"]}
                await client.post("/api/kam/users", headers=admin, json=user)
            ana, bob = await login(ANA, ANA_PASSWORD), await login(BOB, BOB_PASSWORD)

            for _ in range(10):  # basic: 10 a minute
                assert (await client.get("/api/kam/requests", headers=ana)).status_code == 200
            refused = await client.get("/api/kam/requests", headers=ana)
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "quota_exceeded"
            assert refused.headers["retry-after"] == "6"
            assert (await client.get("/api/kam/requests", headers=bob)).status_code == 200
            for _ in range(50):  # staff are not limited
                assert (await client.get("/api/kam/clients", headers=admin)).status_code == 200
            clock.advance(6)  # one request's worth refilled
            assert (await client.get("/api/kam/requests", headers=ana)).status_code == 200
            assert (await client.get("/api/kam/requests", headers=ana)).status_code == 429
            clock.advance(60)  # a full minute: the whole allowance, no more
            codes = [
                (await client.get("/api/kam/requests", headers=ana)).status_code for _ in range(11)
            ]
            assert codes == [200] * 10 + [429]


async def test_a_clients_pace_holds_across_api_replicas(tmp_path: Path) -> None:
    # Two API processes on one state (here one home's database): their buckets are one.
    config = fast_config(tmp_path, api_rate_limits=True)
    async with EmbeddedFactory(config) as first, EmbeddedFactory(config) as second:
        password = await first.accounts.bootstrap_admin(ADMIN)
        admin = await first.accounts.login(ADMIN, password, "admin")
        principal = await first.accounts.authenticate(admin.session_token)
        acme = await first.accounts.create_client(principal, "Acme", "basic", "5")
        await first.accounts.create_user(principal, ANA, ANA_PASSWORD, client_id=acme.id)
        codes = []
        for replica in (first, second) * 6:  # basic: 10 a minute, whichever replica counts
            transport = httpx.ASGITransport(app=factory_app(replica))
            async with httpx.AsyncClient(transport=transport, base_url="http://f.test") as c:
                body = {"username": ANA, "password": ANA_PASSWORD, "loginType": "client"}
                token = (await c.post("/api/auth/login", json=body)).json()["sessionToken"]
                headers = {"x-bitware-session-token": token}
                codes.append((await c.get("/api/kam/requests", headers=headers)).status_code)
    assert codes == [200] * 10 + [429] * 2
