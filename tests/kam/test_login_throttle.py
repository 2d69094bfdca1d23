"""Failed logins are throttled per account and per client address, on SQLite and on a
PostgreSQL database that several factories share: after the free failures each one locks
for longer, the right password during a lock does not log in, every refusal is audited, and
a name that is no account's reaches the audit log only as a salted digest."""

from __future__ import annotations

from typing import Any

import anyio
import attrs
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifactory import AuthenticationError, ManualClock, QuotaExceededError
from aifactory._embedded import EmbeddedFactory
from aifactory.models import LoginFailures, LoginThrottle
from aifactory.server import serving
from tests.helpers import ADMIN, fast_config
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio

THROTTLE = LoginThrottle(account_failures=3, address_failures=5, lock_s=30, max_lock_s=120)
WRONG = "not-the-password-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else None


async def _factory(state: str | None, clock: ManualClock) -> EmbeddedFactory:
    return EmbeddedFactory(fast_config(state_url=state, clock=clock, login_throttle=THROTTLE))


async def _denials(runtime: EmbeddedFactory) -> list[Any]:
    return [e for e in await runtime.store.list_audit(action="auth.login") if e.outcome != "ok"]


async def test_an_account_locks_for_longer_after_each_failure_past_the_free_ones(
    state: str | None,
) -> None:
    clock = ManualClock()
    async with await _factory(state, clock) as runtime:
        password = await runtime.accounts.bootstrap_admin(ADMIN)
        for _ in range(THROTTLE.account_failures):
            with pytest.raises(AuthenticationError):
                await runtime.accounts.login(ADMIN, WRONG, "admin")
        # The failure after the free ones is refused as usual, and locks the account.
        with pytest.raises(AuthenticationError):
            await runtime.accounts.login(ADMIN, WRONG, "admin")
        assert (await _denials(runtime))[0].details["locked_s"] == {"account": 30.0}
        # The right password during the lock does not log in, in any spelling of the name.
        for name in (ADMIN, ADMIN.upper(), f" {ADMIN} "):
            with pytest.raises(QuotaExceededError) as locked:
                await runtime.accounts.login(name, password, "admin")
            assert 0 < locked.value.details["retry_after_s"] <= 30
            assert locked.value.details["reason"] == "login_throttled"
        newest = (await _denials(runtime))[0]
        assert newest.details["reason"] == "throttled"
        assert newest.target.startswith("name_digest:")
        # Once the lock ends, one more failure locks it for twice as long.
        clock.advance(31)
        with pytest.raises(AuthenticationError):
            await runtime.accounts.login(ADMIN, WRONG, "admin")
        with pytest.raises(QuotaExceededError) as locked:
            await runtime.accounts.login(ADMIN, password, "admin")
        assert 30 < locked.value.details["retry_after_s"] <= 60
        clock.advance(61)
        # The right password after the lock logs in, and wipes the account's slate.
        await runtime.accounts.login(ADMIN, password, "admin")
        for _ in range(THROTTLE.account_failures):
            with pytest.raises(AuthenticationError):
                await runtime.accounts.login(ADMIN, WRONG, "admin")
        await runtime.accounts.login(ADMIN, password, "admin")


async def test_a_lock_holds_across_factories_sharing_the_database(
    postgres_url: str,
) -> None:
    clock = ManualClock()
    async with (
        await _factory(postgres_url, clock) as one,
        await _factory(postgres_url, clock) as other,
    ):
        password = await one.accounts.bootstrap_admin(ADMIN)
        # Failures spread over both replicas add up.
        for runtime in (one, other, one, other):
            with pytest.raises(AuthenticationError):
                await runtime.accounts.login(ADMIN, WRONG, "admin")
        for runtime in (one, other):
            with pytest.raises(QuotaExceededError):
                await runtime.accounts.login(ADMIN, password, "admin")
        clock.advance(31)
        await other.accounts.login(ADMIN, password, "admin")


async def test_unknown_names_lock_too_so_a_lock_tells_nothing(state: str | None) -> None:
    clock = ManualClock()
    async with await _factory(state, clock) as runtime:
        await runtime.accounts.bootstrap_admin(ADMIN)
        for _ in range(THROTTLE.account_failures + 1):
            with pytest.raises(AuthenticationError):
                await runtime.accounts.login("nobody@factory.example", WRONG, "admin")
        with pytest.raises(QuotaExceededError):
            await runtime.accounts.login("nobody@factory.example", WRONG, "admin")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_address_locks_over_http_with_retry_after(anyio_backend: str) -> None:
    clock = ManualClock()
    runtime = EmbeddedFactory(fast_config(clock=clock, login_throttle=THROTTLE))
    password = await runtime.accounts.bootstrap_admin(ADMIN)

    def flood(url: str) -> list[httpx.Response]:
        with httpx.Client(base_url=url) as http:
            replies = []
            # Each name fails fewer times than an account may; the address runs out first.
            for i in range(THROTTLE.address_failures + 1):
                body = {"username": f"user{i}@x.example", "password": WRONG}
                replies.append(http.post("/api/auth/login", json=body))
            body = {"username": ADMIN, "password": password, "loginType": "admin"}
            replies.append(http.post("/api/auth/login", json=body))
            return replies

    with UvicornThread(serving(runtime)) as server:
        replies = await anyio.to_thread.run_sync(flood, server.url)
        denials = await _denials(runtime)
    assert [r.status_code for r in replies] == [401] * (THROTTLE.address_failures + 1) + [429]
    last = replies[-1]
    assert last.headers["retry-after"] == "30"
    assert last.json()["error"]["code"] == "quota_exceeded"
    assert denials[0].details == {
        "reason": "throttled",
        "client_address": "127.0.0.1",
        "retry_after_s": 30.0,
    }
    assert denials[1].details["locked_s"] == {"address": 30.0}


@given(
    failures=st.lists(st.floats(min_value=0, max_value=10_000), min_size=1, max_size=30),
    free=st.integers(min_value=0, max_value=10),
)
def test_the_policy_never_shortens_a_lock_and_caps_it(failures: list[float], free: int) -> None:
    throttle = attrs.evolve(THROTTLE, forget_s=600)
    seen, now = LoginFailures(), 1_000_000.0
    for gap in failures:
        now += gap
        after = throttle.after_failure(seen, free, now)
        assert after.locked_until >= seen.locked_until
        assert after.locked_until <= now + throttle.max_lock_s
        assert after.failures == (1 if gap > 600 or seen.failures == 0 else seen.failures + 1)
        if after.failures > free:
            assert after.wait(now) is not None
        seen = after
