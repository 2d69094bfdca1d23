"""The rest of the frontend over HTTP (httpx on the ASGI app): a client's API keys and usage,
the staff's clients, users, keys, audit log and workers, retry and resume from the page, live
progress as server-sent events, the web login's throttle, and page views against the rate limit."""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from aifactory import AuthenticationError, RandomIds
from aifactory._embedded import EmbeddedFactory
from aifactory.models import LoginThrottle
from aifactory.workers import ContentGranulator, ReportBuilder
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, fast_config
from tests.web.world import Gated, World, log_in, populate, post_form

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world() -> AsyncIterator[World]:
    config = fast_config()
    async with EmbeddedFactory(config) as runtime:
        yield await populate(runtime, config.clock)  # type: ignore[arg-type]


def _shown(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}" readonly value="([^"]+)"', page)
    assert found, f"no #{element_id} in the page"
    return found[1]


# -- a client's API keys and usage -------------------------------------------------------------


async def test_a_new_api_key_is_shown_once_works_and_is_revoked(world: World) -> None:
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        await browser.get("/keys")
        created = await post_form(browser, "/keys", {"name": "reporting script"})
        key = _shown(created.text, "new-key-value")
        listed = await browser.get("/keys")
        works = await browser.get("/api/kam/requests", headers={"X-API-Key": key})
        [info] = await (await world.api(ANA, ANA_PASSWORD)).api_keys.list()
        revoked = await post_form(browser, f"/keys/{info.id}/revoke", {"back": "//evil.example"})
        refused = await browser.get("/api/kam/requests", headers={"X-API-Key": key})
        after = await browser.get("/keys")
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    assert key.startswith(f"afk_{info.prefix}_")
    assert key not in listed.text  # shown once: never on the list
    assert "reporting script" in listed.text
    assert works.status_code == 200
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/keys"  # never another origin
    assert refused.status_code == 401
    assert ">revoked<" in after.text


async def test_the_usage_page_shows_the_month_against_the_budget_with_its_csv(
    world: World,
) -> None:
    ana = await world.api(ANA, ANA_PASSWORD)
    report = await ana.clients.usage(world.acme_id)
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        dashboard = await browser.get("/requests")
        # A client naming another client's id still sees its own organisation.
        page = await browser.get(f"/usage?client_id={world.globex_id}")
        csv = await browser.get(f"/usage.csv?month={report.month}")
        bad = await browser.get("/usage?month=2026-13")
    assert '<a href="/usage">Usage this month</a>' in dashboard.text
    assert "<h1>Usage of Acme in " + report.month in page.text
    assert "of a monthly budget of $50.0000" in page.text
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv.headers["content-disposition"] == f'attachment; filename="usage-{report.month}.csv"'
    assert csv.content == await ana.clients.usage_csv(world.acme_id, month=report.month)
    assert bad.status_code == 400


# -- the staff's administration -----------------------------------------------------------------


async def test_staff_create_and_change_a_client_with_field_errors(world: World) -> None:
    async with world.browser() as browser:
        await log_in(browser, ADMIN, world.admin_password, "admin")
        await browser.get("/admin/clients")
        refused = await post_form(
            browser,
            "/admin/clients",
            {"name": "Initech", "tier": "basic", "monthly_budget_usd": "-5"},
        )
        created = await post_form(
            browser,
            "/admin/clients",
            {"name": "Initech", "tier": "basic", "monthly_budget_usd": "25"},
        )
        path = created.headers["location"]
        changed = await post_form(
            browser,
            path,
            {"name": "Initech", "tier": "premium", "monthly_budget_usd": "75", "active": "no"},
        )
    assert refused.status_code == 400
    assert 'id="f-monthly_budget_usd-error"' in refused.text
    assert 'value="Initech"' in refused.text  # what was typed stays
    assert created.status_code == 303
    assert changed.status_code == 200
    assert 'id="client-state">inactive<' in changed.text
    admin = await world.api(ADMIN, world.admin_password, "admin")
    client = await admin.clients.get(path.rsplit("/", 1)[1])
    assert (client.tier.value, client.monthly_budget_usd, client.active) == (
        "premium",
        Decimal(75),
        False,
    )


async def test_staff_create_a_user_reset_its_password_and_deactivate_it(world: World) -> None:
    async with world.browser() as browser:
        await log_in(browser, ADMIN, world.admin_password, "admin")
        await browser.get("/admin/users")
        created = await post_form(
            browser,
            "/admin/users",
            {
                "email": "carol@acme.example",
                "display_name": "Carol",
                "role": "client",
                "client_id": world.acme_id,
                "password": "carol-first-password",
            },
        )
        path = created.headers["location"]
        reset = await post_form(browser, path + "/reset-password", {})
        again = await browser.get(path)
        password = _shown(reset.text, "new-password")
        carol = await world.api("carol@acme.example", password)
        ended = await post_form(browser, path + "/revoke-sessions", {})
        deactivated = await post_form(browser, path + "/deactivate", {})
        shown = await browser.get(path)
        listed = await browser.get(f"/admin/users?client_id={world.acme_id}")
    assert created.status_code == 303
    assert "it is shown this once" in reset.text
    assert password not in again.text
    assert carol.user.email == "carol@acme.example"
    assert 'id="revoked">1 session(s) ended.<' in ended.text
    assert deactivated.status_code == 303
    assert 'id="user-state">deactivated<' in shown.text
    assert "carol@acme.example" in listed.text
    with pytest.raises(AuthenticationError):
        await world.api("carol@acme.example", password)


async def test_staff_list_and_revoke_any_users_api_key(world: World) -> None:
    ana = await world.api(ANA, ANA_PASSWORD)
    key = await ana.api_keys.create(name="ana-script")
    async with world.browser() as browser:
        await log_in(browser, ADMIN, world.admin_password, "admin")
        listed = await browser.get("/admin/keys")
        revoked = await post_form(browser, f"/keys/{key.id}/revoke", {"back": "/admin/keys"})
    assert "ana-script" in listed.text
    assert ANA in listed.text
    assert revoked.headers["location"] == "/admin/keys"
    [info] = await ana.api_keys.list()
    assert info.revoked_at is not None


async def test_the_audit_log_filters_by_action_and_is_for_admins(world: World) -> None:
    async with world.browser() as browser:
        await log_in(browser, ADMIN, world.admin_password, "admin")
        everything = await browser.get("/admin/audit")
        logins = await browser.get("/admin/audit?action=auth.login&limit=50")
        bad = await browser.get("/admin/audit?limit=7")
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        refused = await browser.get("/admin/audit")
    actions = set(re.findall(r'data-action="([^"]+)"', logins.text))
    assert actions == {"auth.login"}
    assert len(set(re.findall(r'data-action="([^"]+)"', everything.text))) > 1
    assert bad.status_code == 400
    assert refused.status_code == 403


async def test_the_workers_page_shows_the_registrys_view(world: World) -> None:
    async with world.browser() as browser:
        await log_in(browser, ADMIN, world.admin_password, "admin")
        page = await browser.get("/admin/workers")
    assert page.status_code == 200
    assert 'data-worker="content_granulator"' in page.text
    assert '<span class="status worker-ready">ready</span>' in page.text


# -- retry and live progress --------------------------------------------------------------------


@pytest.fixture
async def held() -> AsyncIterator[tuple[World, threading.Event]]:
    gate = threading.Event()
    config = fast_config(workers=[ContentGranulator(), Gated(ReportBuilder(), gate)])
    try:
        async with EmbeddedFactory(config) as runtime:
            yield await populate(runtime, config.clock), gate  # type: ignore[arg-type]
    finally:
        gate.set()


async def test_staff_retry_a_cancelled_execution_and_follow_it_as_server_sent_events(
    held: tuple[World, threading.Event],
) -> None:
    world, gate = held
    ana = await world.api(ANA, ANA_PASSWORD)
    admin = await world.api(ADMIN, world.admin_password, "admin")
    req = await ana.requests.create(title="Market analysis", category="research")
    await admin.requests.assign_template(req.id, "quick_research")
    execution = await admin.requests.execute(req.id)
    await admin.executions.cancel(execution.id)
    async with world.browser() as browser:
        await log_in(browser, ADMIN, world.admin_password, "admin")
        cancelled = await browser.get(f"/admin/requests/{req.id}")
        retried = await post_form(browser, f"/admin/executions/{execution.id}/retry", {})
        running = await browser.get(f"/admin/requests/{req.id}")
        gate.set()
        final = await admin.executions.wait(execution.id, timeout_s=30)
        # The stream of a finished execution: its progress, then the end.
        stream = await browser.get(f"/requests/{req.id}/live")
        resumed = await browser.get(f"/requests/{req.id}/live", headers={"Last-Event-ID": "999"})
    assert "Retry execution" in cancelled.text
    assert retried.status_code == 303
    assert retried.headers["location"] == f"/admin/requests/{req.id}"
    assert "Retry execution" not in running.text
    assert f'data-live="/requests/{req.id}/live"' in running.text
    assert final.status.value == "completed"
    assert final.runs == 2
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert "script-src 'self'" in stream.headers["content-security-policy"]
    body = stream.text
    assert body.startswith("retry: 1000\n\n")
    assert "event: progress\nid: " in body
    assert 'data: <section id="progress"' in body
    assert "2 of 2 stages done" in body
    assert body.endswith(
        "event: end\nid: " + body.split("id: ")[-1].split("\n")[0] + "\ndata: \n\n"
    )
    # Reconnecting after the last event it saw, the browser is only told the end.
    assert "event: progress" not in resumed.text
    assert "event: end" in resumed.text


# -- the web login's throttle; page views against the rate limit -------------------------------


async def test_the_web_login_is_throttled_per_address_and_says_how_long_to_wait() -> None:
    # Per address only: each try names another account, so only the address can lock (3
    # free failures, then a lock).
    throttle = LoginThrottle(account_failures=100, address_failures=3, lock_s=30)
    config = fast_config(login_throttle=throttle)
    async with EmbeddedFactory(config) as runtime:
        world = await populate(runtime, config.clock)  # type: ignore[arg-type]
        async with world.browser() as browser:
            tries = [
                await log_in(browser, f"nobody{n}@acme.example", "wrong-password-1")
                for n in range(4)
            ]
            locked = await log_in(browser, ANA, ANA_PASSWORD)  # the right password, too
            world.clock.advance(31)
            unlocked = await log_in(browser, ANA, ANA_PASSWORD)
    assert [t.status_code for t in tries] == [401, 401, 401, 401]
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "30"
    assert "too many failed logins; try again in 30 s" in locked.text
    assert 'id="login-error"' in locked.text
    assert unlocked.status_code == 303


async def test_page_views_count_against_the_clients_rate_limit() -> None:
    config = attrs.evolve(fast_config(), api_rate_limits=True)
    async with EmbeddedFactory(config) as runtime:
        world = await populate(runtime, config.clock)  # type: ignore[arg-type]
        admin = await world.api(ADMIN, world.admin_password, "admin")
        await admin.clients.update(world.acme_id, tier="basic")  # 10 requests a minute
        async with world.browser() as browser:
            await log_in(browser, ANA, ANA_PASSWORD)
            views = [(await browser.get("/requests")).status_code for _ in range(11)]
            rows = await browser.get("/requests/rows")  # a refresh of a counted page
            world.clock.advance(60)
            later = await browser.get("/requests")
        async with world.browser() as browser:
            await log_in(browser, ADMIN, world.admin_password, "admin")
            staff = [(await browser.get("/admin")).status_code for _ in range(12)]
    assert views == [200] * 10 + [429]
    assert rows.status_code == 200
    assert later.status_code == 200
    assert set(staff) == {200}


async def test_staff_resume_an_execution_whose_process_stopped_from_its_page(
    tmp_path: Path,
) -> None:
    gate, started = threading.Event(), threading.Event()

    class Started(Gated):
        async def process(self, *args: Any) -> Any:
            started.set()
            return await super().process(*args)

    def config(recover: bool) -> Any:
        workers = [ContentGranulator(), Started(ReportBuilder(), gate)]
        return fast_config(tmp_path, ids=RandomIds(), workers=workers, recover=recover)

    try:
        async with EmbeddedFactory(config(recover=True)) as runtime:
            world = await populate(runtime, runtime.config.clock)  # type: ignore[arg-type]
            ana = await world.api(ANA, ANA_PASSWORD)
            admin = await world.api(ADMIN, world.admin_password, "admin")
            req = await ana.requests.create(title="Market analysis", category="research")
            await admin.requests.assign_template(req.id, "quick_research")
            execution = await admin.requests.execute(req.id)
            assert await anyio.to_thread.run_sync(started.wait, 30)
        # Its process stopped mid-stage; this one does not take interrupted work up itself.
        async with EmbeddedFactory(config(recover=False)) as runtime:
            world = attrs.evolve(world, runtime=runtime)
            admin = await world.api(ADMIN, world.admin_password, "admin")
            async with world.browser() as browser:
                await log_in(browser, ADMIN, world.admin_password, "admin")
                interrupted = await browser.get(f"/admin/requests/{req.id}")
                gate.set()
                resumed = await post_form(browser, f"/admin/executions/{execution.id}/resume", {})
                final = await admin.executions.wait(execution.id, timeout_s=30)
                settled = await browser.get(f"/admin/requests/{req.id}")
    finally:
        gate.set()
    assert "Resume execution" in interrupted.text
    assert "Retry execution" not in interrupted.text
    assert resumed.status_code == 303
    assert resumed.headers["location"] == f"/admin/requests/{req.id}"
    assert (final.status.value, final.runs) == ("completed", 2)
    assert "Resume execution" not in settled.text
    assert 'id="request-status">completed</span>' in settled.text
