"""Accounts as a user meets them: duplicates refused in words (on SQLite and PostgreSQL),
logins that say which login type fits once the password is right, API keys that never show
their secret, and the local account manager the demo uses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from aifactory import AsyncFactory, AuthenticationError, ConflictError
from aifactory._embedded import EmbeddedFactory
from aifactory.server import factory_app
from tests.helpers import ADMIN, ANA, People, fast_config, setup_people

pytestmark = pytest.mark.anyio

# What a database driver says about a uniqueness violation, and must not reach a user.
DRIVER_WORDS = ("UNIQUE", "constraint", "duplicate key", "users_email", "clients_name", "users.")


@pytest.fixture(params=["sqlite", "postgresql"])
async def people(request: pytest.FixtureRequest) -> AsyncIterator[People]:
    state = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    async with AsyncFactory.embedded(config=fast_config(state_url=state)) as factory:
        yield await setup_people(factory)


async def test_a_taken_email_is_a_conflict_in_words(people: People) -> None:
    for email in (ANA, ANA.upper(), f"  {ANA}  "):
        with pytest.raises(ConflictError) as caught:
            await people.admin.users.create(
                email=email, password="another-password", client_id=people.client_id
            )
        assert caught.value.message == f"a user with email {ANA} already exists"
        assert caught.value.details == {"email": ANA}
        assert not any(word in caught.value.message for word in DRIVER_WORDS)
    with pytest.raises(ConflictError, match=f"a user with email {ADMIN} already exists"):
        await people.admin.users.create(
            email=ADMIN, password="another-password", role="account_manager"
        )
    # Nothing was half-made, and the next user goes in as usual.
    assert [u.email for u in await people.admin.users.list(people.client_id)] == [ANA]
    await people.admin.users.create(
        email="second@acme.example", password="second-password", client_id=people.client_id
    )


async def test_a_taken_client_name_is_a_conflict_in_words(people: People) -> None:
    with pytest.raises(ConflictError) as caught:
        await people.admin.clients.create(name="ACME", tier="basic", monthly_budget_usd=1)
    assert caught.value.message == "a client named 'ACME' already exists"
    assert caught.value.details == {"name": "ACME"}
    assert not any(word in caught.value.message for word in DRIVER_WORDS)
    assert [c.name for c in await people.admin.clients.list()] == ["Acme"]


@pytest.fixture
async def runtime() -> AsyncIterator[EmbeddedFactory]:
    async with EmbeddedFactory(fast_config()) as factory:
        yield factory


async def test_the_right_password_with_the_wrong_login_type_says_which_fits(
    runtime: EmbeddedFactory,
) -> None:
    accounts = runtime.accounts
    password = await accounts.bootstrap_admin(ADMIN)
    with pytest.raises(AuthenticationError) as admin_as_client:
        await accounts.login(ADMIN, password)
    assert admin_as_client.value.message == (
        "this is an admin account: log in with login type 'admin'"
    )
    await accounts.login(ADMIN, password, login_type="admin")
    manager_password, _ = await accounts.issue_local_account_manager("am@factory.example")
    with pytest.raises(AuthenticationError, match="an account manager account: log in with"):
        await accounts.login("am@factory.example", manager_password, login_type="client")


async def test_a_wrong_password_never_gets_the_hint(runtime: EmbeddedFactory) -> None:
    accounts = runtime.accounts
    await accounts.bootstrap_admin(ADMIN)
    messages = set()
    for email, login_type in ((ADMIN, "client"), (ADMIN, "admin"), ("nobody@x.example", "client")):
        with pytest.raises(AuthenticationError) as caught:
            await accounts.login(email, "not-the-password", login_type=login_type)
        messages.add(caught.value.message)
    assert messages == {"invalid username or password"}


async def test_the_hint_reaches_a_client_over_http(runtime: EmbeddedFactory) -> None:
    password = await runtime.accounts.bootstrap_admin(ADMIN)
    transport = httpx.ASGITransport(app=factory_app(runtime))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://f.test") as http,
        AsyncFactory.connect("http://f.test", client=http) as factory,
    ):
        with pytest.raises(AuthenticationError, match="log in with login type 'admin'"):
            await factory.login(ADMIN, password)


async def test_an_api_key_shows_its_secret_only_when_asked_for_it(people: People) -> None:
    info = await people.ana.api_keys.create(name="reports")
    assert info.key is not None
    secret = info.key[info.key.index(info.prefix) + len(info.prefix) :]  # after the lookup id
    assert len(secret) >= 32
    for shown in (repr(info), str(info), f"{info}", repr([info])):
        assert info.key not in shown
        assert secret not in shown
        assert "key='<hidden>'" in shown
    [listed] = await people.ana.api_keys.list()
    assert listed.key is None
    assert "key=None" in repr(listed)


async def test_the_local_account_manager_needs_no_admin_and_takes_no_ones_place(
    runtime: EmbeddedFactory,
) -> None:
    accounts = runtime.accounts
    first, created = await accounts.issue_local_account_manager("demo@factory.example", "demo")
    assert created
    await accounts.login("demo@factory.example", first, login_type="admin")
    second, created = await accounts.issue_local_account_manager("demo@factory.example")
    assert not created
    assert second != first
    with pytest.raises(AuthenticationError, match="invalid username or password"):
        await accounts.login("demo@factory.example", first, login_type="admin")
    await accounts.login("demo@factory.example", second, login_type="admin")
    # The first admin can still be made, and the demo's email is no admin's to take.
    password = await accounts.bootstrap_admin(ADMIN)
    with pytest.raises(ConflictError, match="taken by another kind of user"):
        await accounts.issue_local_account_manager(ADMIN)
    await accounts.login(ADMIN, password, login_type="admin")
