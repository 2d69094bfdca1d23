"""Account administration, in process and over HTTP (a real server on 127.0.0.1): changing
clients and users, deactivation that holds at once for sessions and API keys, password resets
and changes, the end of sessions, and who may do which to whom."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal

import attrs
import pytest

from aifactory import (
    AsyncFactory,
    AsyncSession,
    AuthenticationError,
    BadInputError,
    ConflictError,
    NotFoundError,
    PasswordReset,
    PermissionDeniedError,
)
from aifactory._embedded import EmbeddedFactory
from aifactory.protocol.codec import unstructure
from aifactory.server import serving
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, fast_config
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio

MANAGER = "kim@factory.example"
MANAGER_PASSWORD = "kim-password-789"
OTHER_MANAGER = "lee@factory.example"
SECOND_ADMIN = "root2@factory.example"
STAFF_PASSWORD = "staff-password-000"


@attrs.frozen
class World:
    """A factory (in process or over HTTP) with an admin, an account manager and Ana."""

    factory: AsyncFactory
    admin: AsyncSession
    admin_password: str
    manager: AsyncSession
    ana: AsyncSession
    client_id: str
    secrets: list[str]  # every password, token and key handed out: none may reach the audit

    async def login(self, email: str, password: str, login_type: str = "client") -> AsyncSession:
        session = await self.factory.login(email, password, login_type=login_type)
        self.secrets.append(session.token)
        return session


async def _populate(factory: AsyncFactory, password: str) -> World:
    admin = await factory.login(ADMIN, password, login_type="admin")
    acme = await admin.clients.create(name="Acme", tier="standard", monthly_budget_usd=50)
    await admin.users.create(email=ANA, password=ANA_PASSWORD, client_id=acme.id)
    await admin.users.create(email=MANAGER, password=MANAGER_PASSWORD, role="account_manager")
    manager = await factory.login(MANAGER, MANAGER_PASSWORD, login_type="admin")
    ana = await factory.login(ANA, ANA_PASSWORD)
    tokens = [admin.token, manager.token, ana.token]
    return World(
        factory,
        admin,
        password,
        manager,
        ana,
        acme.id,
        [password, ANA_PASSWORD, MANAGER_PASSWORD, STAFF_PASSWORD, *tokens],
    )


@pytest.fixture(params=["in-process", "http"])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    if request.param == "in-process":
        async with AsyncFactory.embedded(config=fast_config()) as factory:
            yield await _populate(factory, await factory.bootstrap_admin(ADMIN))
        return
    runtime = EmbeddedFactory(fast_config())
    password = await runtime.accounts.bootstrap_admin(ADMIN)
    with UvicornThread(serving(runtime)) as server:
        async with AsyncFactory.connect(server.url) as factory:
            yield await _populate(factory, password)


async def _user_id(world: World, email: str) -> str:
    [user] = [u for u in await world.admin.users.list() if u.email == email]
    return user.id


async def _audit(world: World, action: str) -> list[dict[str, object]]:
    return [
        {"actor": e.actor, "target": e.target, "outcome": e.outcome, **e.details}
        for e in await world.admin.audit.list(action=action)
    ]


# -- clients -----------------------------------------------------------------------------------


async def test_a_client_update_changes_only_what_it_is_given(world: World) -> None:
    before = await world.admin.clients.get(world.client_id)
    after = await world.manager.clients.update(
        world.client_id, tier="premium", monthly_budget_usd="120.50"
    )
    assert (after.name, after.tier.value, after.monthly_budget_usd) == (
        "Acme",
        "premium",
        Decimal("120.50"),
    )
    assert after.used_this_month_usd == before.used_this_month_usd
    assert await world.ana.clients.get(world.client_id) == after
    renamed = await world.admin.clients.update(world.client_id, name="  Acme Corp ")
    assert (renamed.name, renamed.tier.value) == ("Acme Corp", "premium")
    [rename, change] = await _audit(world, "client.update")
    manager_id = await _user_id(world, MANAGER)
    assert change == {
        "actor": f"user:{manager_id}",
        "target": f"client:{world.client_id}",
        "outcome": "ok",
        "fields": ["monthly_budget_usd", "tier"],
        "changes": {
            "tier": {"before": "standard", "after": "premium"},
            "monthly_budget_usd": {"before": "50", "after": "120.50"},
        },
    }
    assert rename["changes"] == {"name": {"before": "Acme", "after": "Acme Corp"}}


async def test_a_client_update_is_checked_as_creation_is(world: World) -> None:
    update = world.admin.clients.update
    for budget in ("-1", "NaN", "Infinity", "lots"):
        with pytest.raises(BadInputError) as caught:
            await update(world.client_id, monthly_budget_usd=budget)
        assert caught.value.details["field"] == "monthly_budget_usd"
    with pytest.raises(BadInputError, match="unknown tier"):
        await update(world.client_id, tier="platinum")
    with pytest.raises(BadInputError, match="client names are 1-200 characters"):
        await update(world.client_id, name="   ")
    with pytest.raises(BadInputError, match="nothing to change"):
        await update(world.client_id)
    await world.admin.clients.create(name="Globex", tier="basic", monthly_budget_usd=1)
    with pytest.raises(ConflictError, match="a client named 'GLOBEX' already exists"):
        await update(world.client_id, name="GLOBEX")
    with pytest.raises(NotFoundError):
        await update("cli_missing", tier="basic")
    client = await world.admin.clients.get(world.client_id)
    assert (client.name, client.tier.value, client.monthly_budget_usd) == (
        "Acme",
        "standard",
        Decimal(50),
    )
    assert await _audit(world, "client.update") == []


async def test_a_deactivated_client_refuses_its_users_at_once(world: World) -> None:
    key = (await world.ana.api_keys.create(name="k")).key
    assert key is not None
    assert (await world.admin.clients.update(world.client_id, active=False)).active is False
    with pytest.raises(AuthenticationError):
        await world.ana.requests.list()
    with pytest.raises(AuthenticationError):
        await world.factory.session(key)
    with pytest.raises(AuthenticationError, match="invalid username or password"):
        await world.factory.login(ANA, ANA_PASSWORD)
    await world.manager.clients.update(world.client_id, active=True)
    await world.ana.requests.list()
    await world.factory.session(key)


# -- users -------------------------------------------------------------------------------------


async def test_a_deactivated_users_sessions_and_keys_stop_at_once(world: World) -> None:
    ana_id = world.ana.user.id
    key = (await world.ana.api_keys.create(name="reports")).key
    assert key is not None
    world.secrets.append(key)
    by_key = await world.factory.session(key)
    await by_key.requests.list()
    user = await world.manager.users.deactivate(ana_id)
    assert user.active is False
    assert (await world.admin.users.get(ana_id)).active is False
    for call in (world.ana.requests.list, by_key.requests.list):
        with pytest.raises(AuthenticationError):
            await call()
    with pytest.raises(AuthenticationError, match="invalid username or password"):
        await world.factory.login(ANA, ANA_PASSWORD)
    [event] = await _audit(world, "user.deactivate")
    assert event["changes"] == {"active": {"before": True, "after": False}}
    assert event["sessions_revoked"] == 1

    assert (await world.manager.users.reactivate(ana_id)).active is True
    await by_key.requests.list()  # the key works again
    with pytest.raises(AuthenticationError):  # the old session stays revoked
        await world.ana.requests.list()
    again = await world.login(ANA, ANA_PASSWORD)
    await again.requests.list()


async def test_a_user_update_changes_email_and_display_name(world: World) -> None:
    ana_id = world.ana.user.id
    user = await world.manager.users.update(ana_id, email=" Ana.New@Acme.example ")
    assert (user.email, user.display_name) == ("ana.new@acme.example", "")
    user = await world.manager.users.update(ana_id, display_name="Ana Novak")
    assert (user.email, user.display_name) == ("ana.new@acme.example", "Ana Novak")
    await world.login("ana.new@acme.example", ANA_PASSWORD)
    with pytest.raises(AuthenticationError):
        await world.factory.login(ANA, ANA_PASSWORD)
    with pytest.raises(ConflictError, match=f"a user with email {MANAGER} already exists"):
        await world.admin.users.update(ana_id, email=MANAGER.upper())
    with pytest.raises(BadInputError, match="not an email address"):
        await world.admin.users.update(ana_id, email="nobody")
    with pytest.raises(BadInputError, match="nothing to change"):
        await world.admin.users.update(ana_id)
    with pytest.raises(NotFoundError):
        await world.admin.users.get("usr_missing")
    changes = [e["changes"] for e in await _audit(world, "user.update")]
    assert changes == [
        {"display_name": {"before": "", "after": "Ana Novak"}},
        {"email": {"before": ANA, "after": "ana.new@acme.example"}},
    ]


async def test_the_last_active_admin_stays(world: World) -> None:
    admin_id = world.admin.user.id
    with pytest.raises(ConflictError, match="the last active admin"):
        await world.admin.users.deactivate(admin_id)
    second = await world.admin.users.create(
        email=SECOND_ADMIN, password=STAFF_PASSWORD, role="admin"
    )
    await world.admin.users.deactivate(second.id)
    with pytest.raises(ConflictError, match="the last active admin"):
        await world.admin.users.deactivate(admin_id)
    await world.admin.users.reactivate(second.id)
    root2 = await world.login(SECOND_ADMIN, STAFF_PASSWORD, "admin")
    await root2.users.deactivate(admin_id)
    with pytest.raises(AuthenticationError):
        await world.admin.users.list()


# -- passwords and sessions --------------------------------------------------------------------


async def test_a_reset_password_is_shown_once_and_the_old_one_fails(world: World) -> None:
    ana_id = world.ana.user.id
    reset = await world.manager.users.reset_password(ana_id)
    world.secrets.append(reset.password)
    assert isinstance(reset, PasswordReset)
    assert (reset.user.id, reset.sessions_revoked) == (ana_id, 1)
    assert len(reset.password) >= 20
    for shown in (repr(reset), str(reset)):
        assert reset.password not in shown
        assert "password='<hidden>'" in shown
    with pytest.raises(AuthenticationError):
        await world.ana.requests.list()
    with pytest.raises(AuthenticationError, match="invalid username or password"):
        await world.factory.login(ANA, ANA_PASSWORD)
    ana = await world.login(ANA, reset.password)
    await ana.requests.list()
    # Nowhere else: not in the user, not in the listings.
    assert reset.password not in json.dumps(unstructure(await world.admin.users.list()))
    [event] = await _audit(world, "user.password_reset")
    assert event == {
        "actor": world.manager.user and f"user:{world.manager.user.id}",
        "target": f"user:{ana_id}",
        "outcome": "ok",
        "sessions_revoked": 1,
    }


async def test_revoking_a_users_sessions_logs_out_all_of_them(world: World) -> None:
    ana_id = world.ana.user.id
    other = await world.login(ANA, ANA_PASSWORD)
    key = (await world.ana.api_keys.create(name="k")).key
    assert key is not None
    world.secrets.append(key)
    assert await world.admin.users.revoke_sessions(ana_id) == 2
    for session in (world.ana, other):
        with pytest.raises(AuthenticationError):
            await session.requests.list()
    await (await world.factory.session(key)).requests.list()  # API keys are not sessions
    assert await world.admin.users.revoke_sessions(ana_id) == 0
    counts = [e["sessions_revoked"] for e in await _audit(world, "user.revoke_sessions")]
    assert counts == [0, 2]
    await world.login(ANA, ANA_PASSWORD)


async def test_changing_your_password_keeps_only_this_session(world: World) -> None:
    other = await world.login(ANA, ANA_PASSWORD)
    new = "ana-new-password-321"
    world.secrets.append(new)
    with pytest.raises(AuthenticationError, match="the current password is wrong"):
        await world.ana.change_password("not-the-password", new)
    with pytest.raises(BadInputError, match="12 to 1024 characters") as short:
        await world.ana.change_password(ANA_PASSWORD, "short")
    assert short.value.details == {"field": "new_password"}
    with pytest.raises(BadInputError, match="the new password is the current one"):
        await world.ana.change_password(ANA_PASSWORD, ANA_PASSWORD)
    await other.requests.list()  # nothing changed yet
    await world.ana.change_password(ANA_PASSWORD, new)
    await world.ana.requests.list()
    with pytest.raises(AuthenticationError):
        await other.requests.list()
    with pytest.raises(AuthenticationError):
        await world.factory.login(ANA, ANA_PASSWORD)
    await world.login(ANA, new)
    outcomes = [
        (e["outcome"], e.get("sessions_revoked"))
        for e in await _audit(world, "auth.change_password")
    ]
    assert outcomes == [("ok", 1), ("denied", None)]
    # Staff change their own passwords the same way.
    await world.manager.change_password(MANAGER_PASSWORD, STAFF_PASSWORD)
    await world.login(MANAGER, STAFF_PASSWORD, "admin")


# -- who may do what to whom -------------------------------------------------------------------


async def test_an_account_manager_cannot_touch_staff_users(world: World) -> None:
    admin_id = world.admin.user.id
    other = await world.admin.users.create(
        email=OTHER_MANAGER, password=STAFF_PASSWORD, role="account_manager"
    )
    admin_key = await world.admin.api_keys.create(name="ops")
    assert admin_key.key is not None
    world.secrets.append(admin_key.key)
    manager = world.manager
    for target in (admin_id, other.id):
        for refused in (
            manager.users.deactivate(target),
            manager.users.reactivate(target),
            manager.users.reset_password(target),
            manager.users.revoke_sessions(target),
            manager.users.update(target, display_name="x"),
        ):
            with pytest.raises(PermissionDeniedError, match="only admins manage"):
                await refused
    # The hole this closes: an account manager revoked an admin's API keys.
    with pytest.raises(PermissionDeniedError, match="only admins revoke the API keys"):
        await manager.api_keys.revoke(admin_key.id)
    await (await world.factory.session(admin_key.key)).clients.list()
    await world.admin.users.list()  # the admin is untouched
    denied = await world.admin.audit.list(action="api_key.revoke")
    assert [e.outcome for e in denied] == ["denied"]
    # Its own account and client users it manages; an admin manages everyone.
    own = await world.admin.api_keys.create(name="mine", user_id=manager.user.id)
    assert (await manager.api_keys.revoke(own.id)).revoked_at is not None
    assert (await manager.users.update(manager.user.id, display_name="Kim")).display_name == "Kim"
    await world.admin.users.update(other.id, display_name="Lee")
    await world.admin.users.deactivate(other.id)
    await world.admin.api_keys.revoke(admin_key.id)


async def test_a_client_user_calls_none_of_the_staff_operations(world: World) -> None:
    ana, me = world.ana, world.ana.user.id
    for refused in (
        ana.clients.update(world.client_id, monthly_budget_usd=1000),
        ana.users.get(me),
        ana.users.update(me, display_name="x"),
        ana.users.deactivate(me),
        ana.users.reactivate(me),
        ana.users.reset_password(me),
        ana.users.revoke_sessions(me),
    ):
        with pytest.raises(PermissionDeniedError, match="role 'client' may not call"):
            await refused
    assert (await world.admin.clients.get(world.client_id)).monthly_budget_usd == 50


async def test_no_secret_reaches_the_audit_log(world: World) -> None:
    ana_id = world.ana.user.id
    reset = await world.admin.users.reset_password(ana_id)
    world.secrets.append(reset.password)
    ana = await world.login(ANA, reset.password)
    await ana.change_password(reset.password, "ana-final-password-1")
    world.secrets.append("ana-final-password-1")
    with pytest.raises(AuthenticationError):
        await ana.change_password("wrong-password-xyz", "ana-other-password-2")
    await world.manager.users.deactivate(ana_id)
    await world.manager.users.revoke_sessions(ana_id)
    log = json.dumps(unstructure(await world.admin.audit.list(limit=1000)))
    for secret in world.secrets:
        assert secret not in log
    assert "hash" not in log
