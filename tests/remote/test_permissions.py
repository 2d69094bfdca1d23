"""Walk the whole operation table over HTTP with each kind of credential.

Deny by default: no credentials get 401 (login aside), a client session and that client's
API key reach exactly the operations the table grants clients and never another client's
objects (404), staff-only operations answer 403, an account manager reaches what the table
grants its role but never an admin's user, sessions or API keys (403), and a worker signature
is no credential for the factory's API.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import attrs
import httpx
import pytest

from aifactory._embedded import EmbeddedFactory
from aifactory.api import OPERATIONS, Operation
from aifactory.models import Role
from aifactory.server import factory_app
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, BOB, BOB_PASSWORD, fast_config

MANAGER = "kim@factory.example"

pytestmark = pytest.mark.anyio


@attrs.frozen
class World:
    client: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    own: dict[str, str]  # Ana's objects
    other: dict[str, str]  # Bob's objects
    staff: dict[str, str]  # the admin's user and API key


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with EmbeddedFactory(fast_config()) as runtime:
        password = await runtime.accounts.bootstrap_admin(ADMIN)
        transport = httpx.ASGITransport(app=factory_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://f.test") as client:

            async def login(user: str, secret: str, kind: str = "client") -> dict[str, str]:
                body = {"username": user, "password": secret, "loginType": kind}
                reply = await client.post("/api/auth/login", json=body)
                assert reply.status_code == 200, reply.text
                return {"x-bitware-session-token": reply.json()["sessionToken"]}

            admin = await login(ADMIN, password, "admin")
            await client.post(
                "/api/kam/users",
                headers=admin,
                json={"email": MANAGER, "password": BOB_PASSWORD, "role": "account_manager"},
            )
            manager = await login(MANAGER, BOB_PASSWORD, "admin")
            me = (await client.get("/api/auth/me", headers=admin)).json()["user"]
            admin_key = (
                await client.post("/api/kam/api-keys", headers=admin, json={"name": "ops"})
            ).json()
            ids: dict[str, dict[str, str]] = {}
            for name, email, secret in (("Acme", ANA, ANA_PASSWORD), ("Globex", BOB, BOB_PASSWORD)):
                c = (
                    await client.post(
                        "/api/kam/clients",
                        headers=admin,
                        json={"name": name, "tier": "standard", "monthly_budget_usd": "50"},
                    )
                ).json()
                u = (
                    await client.post(
                        "/api/kam/users",
                        headers=admin,
                        json={"email": email, "password": secret, "client_id": c["id"]},
                    )
                ).json()
                user = await login(email, secret)
                r = (
                    await client.post(
                        "/api/kam/requests", headers=user, json={"title": f"{name} report"}
                    )
                ).json()
                await client.put(
                    f"/api/kam/requests/{r['id']}",
                    headers=admin,
                    json={"template_name": "quick_research"},
                )
                x = (
                    await client.post(f"/api/kam/requests/{r['id']}/execute", headers=admin)
                ).json()
                for _ in range(200):  # settled: deliverables stored, client notified
                    status = (
                        await client.get(f"/api/kam/requests/{r['id']}", headers=admin)
                    ).json()["status"]
                    if status == "completed":
                        break
                    await anyio.sleep(0.01)
                d = (
                    await client.get(f"/api/kam/requests/{r['id']}/deliverables", headers=user)
                ).json()[0]
                n = (await client.get("/api/kam/notifications", headers=user)).json()[0]
                k = (
                    await client.post("/api/kam/api-keys", headers=user, json={"name": "k"})
                ).json()
                ids[name] = {
                    "client_id": c["id"],
                    "request_id": r["id"],
                    "execution_id": x["id"],
                    "deliverable_id": d["id"],
                    "notification_id": n["id"],
                    "key_id": k["id"],
                    "user_id": u["id"],
                    "name": "quick_research",
                    "session": user["x-bitware-session-token"],
                    "api_key": k["key"],
                }
            headers = {
                "admin": admin,
                "manager": manager,
                "session": {"x-bitware-session-token": ids["Acme"]["session"]},
                "api_key": {"X-API-Key": ids["Acme"]["api_key"]},
                "worker": {
                    "X-Worker-ID": "orchestrator",
                    "X-Signature": f"{int(time.time())}.{'n' * 22}.{'A' * 43}",
                },
                "none": {},
            }
            staff = {"user_id": me["id"], "key_id": admin_key["id"]}
            yield World(client, headers, ids["Acme"], ids["Globex"], staff)


def _path(op: Operation, ids: dict[str, str]) -> str:
    path = op.path
    for name in op.path_params:
        path = path.replace("{" + name + "}", ids[name])
    return path


async def _call(world: World, op: Operation, who: str, ids: dict[str, str]) -> httpx.Response:
    body: Any = None
    if op.name == "auth.logout":
        return httpx.Response(204)  # would end the session under test; covered elsewhere
    if op.method != "GET":
        body = {}
    return await world.client.request(
        op.method, _path(op, ids), headers=world.headers[who], json=body
    )


def _error_body(response: httpx.Response) -> None:
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}


@pytest.mark.parametrize("op", [o for o in OPERATIONS if not o.public], ids=lambda o: o.name)
async def test_every_operation_refuses_missing_and_worker_credentials(
    world: World, op: Operation
) -> None:
    for who in ("none", "worker"):
        response = await _call(world, op, who, world.own)
        if op.name == "auth.logout":
            continue
        assert response.status_code == 401, (who, response.text)
        _error_body(response)


@pytest.mark.parametrize("who", ["session", "api_key"])
@pytest.mark.parametrize("op", [o for o in OPERATIONS if not o.public], ids=lambda o: o.name)
async def test_a_client_reaches_only_what_the_table_grants(
    world: World, op: Operation, who: str
) -> None:
    # Another client's objects first: revoking one's own key ends the API-key caller.
    other = await _call(world, op, who, world.other) if op.path_params else None
    own = await _call(world, op, who, world.own)
    if not op.allows(Role.CLIENT):
        assert own.status_code == 403, own.text
        _error_body(own)
        return
    assert own.status_code < 500, own.text
    if other is not None:
        if op.path_params == ("name",):  # templates are shared, not owned
            assert other.status_code == own.status_code
        else:
            assert other.status_code == 404, (op.name, other.text)
            _error_body(other)


async def test_staff_reach_everything_and_admin_only_stays_admin_only(world: World) -> None:
    for op in OPERATIONS:
        if op.public or op.name == "auth.logout":
            continue
        response = await _call(world, op, "admin", world.own)
        assert response.status_code not in (401, 403), (op.name, response.text)
        assert response.status_code < 500, (op.name, response.text)


@pytest.mark.parametrize("op", [o for o in OPERATIONS if not o.public], ids=lambda o: o.name)
async def test_an_account_manager_reaches_what_the_table_grants_its_role(
    world: World, op: Operation
) -> None:
    if op.name == "api_keys.create":  # for a client user: staff keys are the admins' to make
        response = await world.client.post(
            op.path, headers=world.headers["manager"], json={"user_id": world.own["user_id"]}
        )
    else:
        response = await _call(world, op, "manager", world.own)
    if not op.allows(Role.ACCOUNT_MANAGER):
        assert response.status_code == 403, (op.name, response.text)
        _error_body(response)
        return
    assert response.status_code not in (401, 403), (op.name, response.text)
    assert response.status_code < 500, (op.name, response.text)


#: The operations that act on one user (or its API key): an account manager may not aim them
#: at an admin.
ON_A_USER = {
    "users.update": {"display_name": "x"},
    "users.deactivate": {},
    "users.reactivate": {},
    "users.reset_password": {},
    "users.revoke_sessions": {},
    "api_keys.revoke": {},
}


@pytest.mark.parametrize("name", sorted(ON_A_USER))
async def test_an_account_manager_never_acts_on_an_admin(world: World, name: str) -> None:
    [op] = [o for o in OPERATIONS if o.name == name]
    response = await world.client.request(
        op.method, _path(op, world.staff), headers=world.headers["manager"], json=ON_A_USER[name]
    )
    assert response.status_code == 403, response.text
    _error_body(response)
    # The admin's session and key still work.
    me = await world.client.get("/api/auth/me", headers=world.headers["admin"])
    assert me.status_code == 200, me.text
    keys = (await world.client.get("/api/kam/api-keys", headers=world.headers["admin"])).json()
    assert [k["revoked_at"] for k in keys if k["id"] == world.staff["key_id"]] == [None]
