"""The frontend's pages and form handlers over HTTP (httpx on the ASGI app, no browser):
cookies, CSRF, headers, field errors, escaping, expiry, who sees what, and the whole flow."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from aifactory._embedded import EmbeddedFactory
from aifactory.server.web.forms import MAX_FORM_BYTES
from aifactory.server.web.site import render_markdown
from aifactory.workers import ContentGranulator, ReportBuilder
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, BOB, BOB_PASSWORD, fast_config
from tests.web.world import (
    CSRF,
    SESSION,
    Gated,
    World,
    csrf_of,
    log_in,
    populate,
    post_form,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world() -> AsyncIterator[World]:
    config = fast_config()
    async with EmbeddedFactory(config) as runtime:
        yield await populate(runtime, config.clock)  # type: ignore[arg-type]


def _set_cookie(reply: object, name: str) -> str:
    headers = reply.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    [cookie] = [h for h in headers if h.startswith(name + "=")]
    return str(cookie)


# -- cookies and headers -----------------------------------------------------------------------


async def test_the_session_cookie_is_httponly_and_strict_and_not_secure_over_http(
    world: World,
) -> None:
    async with world.browser() as browser:
        reply = await log_in(browser, ANA, ANA_PASSWORD)
    assert reply.status_code == 303
    assert reply.headers["location"] == "/requests"
    cookie = _set_cookie(reply, SESSION).lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie
    assert "max-age=86400" in cookie  # the session's 24 hours, whatever the browser's clock
    csrf = _set_cookie(reply, CSRF).lower()
    assert "httponly" in csrf
    assert "samesite=strict" in csrf


async def test_over_https_both_cookies_are_secure(world: World) -> None:
    async with world.browser(https=True) as browser:
        reply = await log_in(browser, ANA, ANA_PASSWORD)
    assert reply.status_code == 303
    for name in (SESSION, CSRF):
        assert "; secure" in _set_cookie(reply, name).lower(), name


async def test_every_page_carries_a_csp_without_inline_scripts(world: World) -> None:
    async with world.browser() as browser:
        login = await browser.get("/login")
        await log_in(browser, ANA, ANA_PASSWORD)
        dashboard = await browser.get("/requests")
    for reply in (login, dashboard):
        assert reply.status_code == 200
        policy = dict(
            part.strip().split(" ", 1)
            for part in reply.headers["content-security-policy"].split(";")
        )
        assert policy["script-src"] == "'self'"
        assert policy["default-src"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"
        assert "unsafe" not in reply.headers["content-security-policy"]
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
        assert "<script>" not in reply.text  # no inline script: only <script src=...>
    assert dashboard.headers["cache-control"] == "no-store"


async def test_htmx_is_served_from_the_package_with_its_licence(world: World) -> None:
    async with world.browser() as browser:
        page = await browser.get("/login")
        script = await browser.get("/static/htmx.min.js")
    assert '<script src="/static/htmx.min.js" defer></script>' in page.text
    assert script.status_code == 200
    assert script.text.startswith("/*! htmx 2.")
    assert "Zero-Clause BSD" in script.text[:300]
    assert "var htmx=" in script.text


# -- logging in and out ------------------------------------------------------------------------


async def test_a_failed_login_does_not_say_whether_the_account_exists(world: World) -> None:
    async with world.browser() as browser:
        unknown = await log_in(browser, "nobody@acme.example", "some-password-1")
        wrong = await log_in(browser, ANA, "wrong-password-1")
    assert unknown.status_code == wrong.status_code == 401
    assert SESSION not in unknown.headers.get("set-cookie", "")
    messages = [r.text.split('id="login-error">')[1].split("<")[0] for r in (unknown, wrong)]
    assert messages[0] == messages[1] == "invalid username or password"
    assert 'value="nobody@acme.example"' in unknown.text  # the form keeps what was typed


async def test_logging_out_ends_the_session_and_forgets_its_cookie(world: World) -> None:
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        token = browser.cookies.get(SESSION)
        out = await post_form(browser, "/logout", {})
        assert out.status_code == 303
        assert out.headers["location"] == "/login?reason=bye"
        assert browser.cookies.get(SESSION) is None
        page = await browser.get(out.headers["location"])
        assert "You have logged out." in page.text
        # The token itself is revoked, not just forgotten by this browser.
        browser.cookies.set(SESSION, token or "", domain="factory.test")
        again = await browser.get("/requests")
    assert again.status_code == 303
    assert again.headers["location"] == "/login?reason=signin"


async def test_an_expired_session_goes_back_to_the_login_page_with_a_message(
    world: World,
) -> None:
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        assert (await browser.get("/requests")).status_code == 200
        world.clock.advance(timedelta(hours=25))
        reply = await browser.get("/requests")
        assert reply.status_code == 303
        assert reply.headers["location"] == "/login?reason=expired"
        assert browser.cookies.get(SESSION) is None
        page = await browser.get("/login?reason=expired")
        polled = await browser.get("/requests/rows", headers={"HX-Request": "true"})
    assert "Your session has expired: log in again." in page.text
    assert polled.headers["hx-redirect"] == "/login?reason=signin"


# -- CSRF ------------------------------------------------------------------------------------


async def test_forms_posted_without_the_csrf_token_are_refused(world: World) -> None:
    async with world.browser() as browser:
        login = await browser.post(
            "/login", data={"username": ANA, "password": ANA_PASSWORD, "login_type": "client"}
        )
        assert login.status_code == 403
        assert browser.cookies.get(SESSION) is None
        await log_in(browser, ANA, ANA_PASSWORD)
        create = await browser.post("/requests/new", data={"title": "Forged"})
        logout = await browser.post("/logout", data={})
        forged = await browser.post(
            "/requests/new", data={"title": "Forged", "csrf_token": "a-token-of-another-site"}
        )
    assert create.status_code == logout.status_code == forged.status_code == 403
    assert "did not come from this site" in create.text
    ana = await world.api(ANA, ANA_PASSWORD)
    assert await ana.requests.list() == []


async def test_a_new_login_gets_a_new_csrf_token(world: World) -> None:
    async with world.browser() as browser:
        await browser.get("/login")
        planted = browser.cookies.get(CSRF)
        await log_in(browser, ANA, ANA_PASSWORD)
        fresh = browser.cookies.get(CSRF)
        page = await browser.get("/requests/new")
    assert planted
    assert fresh
    assert planted != fresh
    assert csrf_of(page.text) == fresh


async def test_an_oversized_form_is_refused(world: World) -> None:
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        reply = await post_form(browser, "/requests/new", {"title": "x" * (MAX_FORM_BYTES + 1)})
    assert reply.status_code == 413


# -- requests --------------------------------------------------------------------------------


async def test_a_refused_field_is_shown_next_to_it_with_the_operations_words(
    world: World,
) -> None:
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        empty = await post_form(
            browser,
            "/requests/new",
            {"title": "  ", "description": "Kept", "urgency": "high", "category": "research"},
        )
        urgency = await post_form(
            browser, "/requests/new", {"title": "Fine", "urgency": "yesterday", "category": "x"}
        )
    assert empty.status_code == 400
    assert '<p class="error" id="title-error">title must be 1-200 characters</p>' in empty.text
    assert 'aria-invalid="true" aria-describedby="title-error"' in empty.text
    assert ">Kept</textarea>" in empty.text  # what was typed stays
    assert urgency.status_code == 400
    assert "unknown urgency &#39;yesterday&#39;" in urgency.text
    assert 'id="urgency-error"' in urgency.text
    ana = await world.api(ANA, ANA_PASSWORD)
    assert await ana.requests.list() == []


async def test_a_request_is_created_and_listed_with_its_status(world: World) -> None:
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        reply = await post_form(
            browser,
            "/requests/new",
            {
                "title": "Market analysis for AI tools",
                "description": "Segments and pricing.",
                "urgency": "high",
                "category": "research",
            },
        )
        ana = await world.api(ANA, ANA_PASSWORD)
        [created] = await ana.requests.list()
        assert reply.status_code == 303
        assert reply.headers["location"] == f"/requests/{created.id}"
        dashboard = await browser.get("/requests")
        page = await browser.get(reply.headers["location"])
    assert (created.title, created.urgency.value, created.category) == (
        "Market analysis for AI tools",
        "high",
        "research",
    )
    assert f'<a href="/requests/{created.id}">Market analysis for AI tools</a>' in dashboard.text
    assert '<span class="status status-pending">pending</span>' in dashboard.text
    assert "budget this month" in dashboard.text
    assert 'id="request-status">pending<' in page.text


async def test_user_text_is_escaped_everywhere_it_is_shown(world: World) -> None:
    title = "<script>alert('t')</script><img src=x onerror=alert(1)>"
    ana = await world.api(ANA, ANA_PASSWORD)
    req = await ana.requests.create(title=title, description="<b>bold</b>", category="<i>")
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        pages = [await browser.get("/requests"), await browser.get(f"/requests/{req.id}")]
    async with world.browser() as browser:
        await log_in(browser, ADMIN, world.admin_password, "admin")
        pages += [await browser.get("/admin"), await browser.get(f"/admin/requests/{req.id}")]
    for page in pages:
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;" in page.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in pages[1].text


async def test_another_clients_request_is_not_found_and_admin_pages_are_refused(
    world: World,
) -> None:
    ana = await world.api(ANA, ANA_PASSWORD)
    req = await ana.requests.create(title="Acme's own")
    async with world.browser() as browser:
        await log_in(browser, BOB, BOB_PASSWORD)
        other = await browser.get(f"/requests/{req.id}")
        progress = await browser.get(f"/requests/{req.id}/progress")
        queue = await browser.get("/admin")
        admin_page = await browser.get(f"/admin/requests/{req.id}")
        assign = await post_form(
            browser, f"/admin/requests/{req.id}/assign", {"template": "quick_research"}
        )
        dashboard = await browser.get("/requests")
    assert other.status_code == progress.status_code == 404
    assert "Acme&#39;s own" not in other.text
    assert queue.status_code == admin_page.status_code == assign.status_code == 403
    assert "Acme&#39;s own" not in dashboard.text
    assert (await ana.requests.get(req.id)).template_name is None


# -- the admin's side and the deliverable ----------------------------------------------------


async def test_the_parameter_form_shows_each_refusal_next_to_its_field(world: World) -> None:
    ana = await world.api(ANA, ANA_PASSWORD)
    req = await ana.requests.create(title="Market analysis", category="research")
    async with world.browser() as browser:
        await log_in(browser, ADMIN, world.admin_password, "admin")
        form = await browser.get(f"/admin/requests/{req.id}?template=quick_research")
        refused = await post_form(
            browser,
            f"/admin/requests/{req.id}/assign",
            {
                "template": "quick_research",
                "param.granularity": "9",
                "param.max_summary_sentences": "many",
            },
        )
        accepted = await post_form(
            browser,
            f"/admin/requests/{req.id}/assign",
            {"template": "quick_research", "param.granularity": "3", "param.topic": "AI tools"},
        )
    # The form comes from the schema: types, ranges and defaults.
    assert 'name="param.granularity" type="number"' in form.text
    assert 'step="1" min="1.0" max="5.0"' in form.text
    assert 'placeholder="general"' in form.text
    assert refused.status_code == 400
    assert '<p class="error" id="param.granularity-error">must be at most 5</p>' in refused.text
    assert (
        '<p class="error" id="param.max_summary_sentences-error">must be an integer</p>'
        in refused.text
    )
    assert 'value="9"' in refused.text  # the refused value stays for correcting
    assert accepted.status_code == 303
    assigned = await ana.requests.get(req.id)
    assert assigned.template_name == "quick_research"
    assert assigned.parameters["granularity"] == 3
    assert assigned.parameters["topic"] == "AI tools"


async def test_the_whole_flow_through_the_pages(world: World) -> None:
    ana = await world.api(ANA, ANA_PASSWORD)
    req = await ana.requests.create(
        title="Market analysis for AI tools",
        description="Segments, vendors, pricing, adoption.",
        category="research",
    )
    async with world.browser() as admin:
        await log_in(admin, ADMIN, world.admin_password, "admin")
        queue = await admin.get("/admin")
        recommended = await post_form(admin, f"/admin/requests/{req.id}/recommend", {})
        fragment = await admin.post(
            f"/admin/requests/{req.id}/recommend",
            data={"csrf_token": admin.cookies.get(CSRF) or ""},
            headers={"HX-Request": "true"},
        )
        await post_form(
            admin,
            f"/admin/requests/{req.id}/assign",
            {"template": "quick_research", "param.granularity": "3"},
        )
        started = await post_form(admin, f"/admin/requests/{req.id}/execute", {})
        admin_api = await world.api(ADMIN, world.admin_password, "admin")
        running = await ana.requests.get(req.id)
        assert running.execution_id is not None
        await admin_api.executions.wait(running.execution_id, timeout_s=60)
    assert f'<a href="/admin/requests/{req.id}">Market analysis for AI tools</a>' in queue.text
    assert 'class="confidence"' in recommended.text
    assert "Recommend a template" not in recommended.text
    assert fragment.text.lstrip().startswith('<section id="recommendation"')
    assert "<html" not in fragment.text
    assert started.status_code == 303
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        page = await browser.get(f"/requests/{req.id}")
        polled = await browser.get(
            f"/requests/{req.id}/progress?was=live", headers={"HX-Request": "true"}
        )
        [deliverable] = await ana.deliverables.list(req.id)
        shown = await browser.get(f"/deliverables/{deliverable.id}")
        download = await browser.get(f"/deliverables/{deliverable.id}/download")
        frame = await browser.get(f"/deliverables/{deliverable.id}/frame")
        notes = await browser.get("/notifications")
    assert 'id="request-status">completed<' in page.text
    assert "2 of 2 stages done" in page.text
    assert "data-live" not in page.text.split('id="progress"')[1].split(">")[0]
    assert polled.headers["hx-refresh"] == "true"
    assert f'href="/deliverables/{deliverable.id}/download"' in page.text
    assert '<article class="deliverable"' in shown.text
    assert "<h1>" in shown.text.split('<article class="deliverable"')[1]
    assert download.content == await ana.deliverables.download(deliverable.id)
    assert download.headers["content-disposition"] == 'attachment; filename="report.md"'
    assert frame.status_code == 404  # only HTML deliverables have a framed view
    assert "is complete" in notes.text
    assert '<span class="badge" data-unread="1">1</span>' in notes.text


# -- a held execution: cancel; an HTML deliverable -------------------------------------------


@pytest.fixture
async def held() -> AsyncIterator[tuple[World, threading.Event]]:
    gate = threading.Event()
    # The report builder writes HTML beside the Markdown, and waits for the test's word.
    builder = Gated(ReportBuilder(), gate, {"format": ["markdown", "html"]})
    config = fast_config(workers=[ContentGranulator(), builder])
    try:
        async with EmbeddedFactory(config) as runtime:
            yield await populate(runtime, config.clock), gate  # type: ignore[arg-type]
    finally:
        gate.set()


async def _started(world: World) -> tuple[Any, str, str]:
    ana = await world.api(ANA, ANA_PASSWORD)
    admin = await world.api(ADMIN, world.admin_password, "admin")
    req = await ana.requests.create(title="Market analysis", category="research")
    await admin.requests.assign_template(req.id, "quick_research")
    execution = await admin.requests.execute(req.id)
    return admin, req.id, execution.id


async def test_a_client_cancels_a_running_execution_from_its_page(
    held: tuple[World, threading.Event],
) -> None:
    world, _ = held
    admin, req_id, execution_id = await _started(world)
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        page = await browser.get(f"/requests/{req_id}")
        assert f'data-live="/requests/{req_id}/live"' in page.text
        assert f'action="/executions/{execution_id}/cancel"' in page.text
        reply = await post_form(browser, f"/executions/{execution_id}/cancel", {})
        assert reply.status_code == 303
        assert reply.headers["location"] == f"/requests/{req_id}"
        final = await admin.executions.wait(execution_id, timeout_s=30)
        after = await browser.get(f"/requests/{req_id}")
    assert final.status.value == "cancelled"
    assert 'id="request-status">cancelled<' in after.text
    assert "Cancel execution" not in after.text


async def test_an_html_deliverable_is_framed_in_a_sandbox(
    held: tuple[World, threading.Event],
) -> None:
    world, gate = held
    gate.set()
    admin, req_id, execution_id = await _started(world)
    await admin.executions.wait(execution_id, timeout_s=30)
    [html] = [d for d in await admin.deliverables.list(req_id) if d.filename == "report.html"]
    async with world.browser() as browser:
        await log_in(browser, ANA, ANA_PASSWORD)
        page = await browser.get(f"/deliverables/{html.id}")
        frame = await browser.get(f"/deliverables/{html.id}/frame")
        download = await browser.get(f"/deliverables/{html.id}/download")
    assert f'<iframe class="deliverable" sandbox src="/deliverables/{html.id}/frame"' in page.text
    assert frame.status_code == 200
    assert frame.headers["content-security-policy"].startswith("sandbox; default-src 'none'")
    assert "script-src" not in frame.headers["content-security-policy"]
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"
    assert frame.content == await admin.deliverables.download(html.id)
    # Downloaded, it is a file, never a page of this site.
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"] == 'attachment; filename="report.html"'


# -- Markdown ------------------------------------------------------------------------------


def test_markdown_keeps_raw_html_as_text_and_makes_no_unsafe_links() -> None:
    html = render_markdown(
        "# Report\n\n<script>alert(1)</script>\n\n[click](javascript:alert(1)) "
        "[ok](https://example.org/a)\n\n<img src=x onerror=alert(1)>"
    )
    assert "<h1>Report</h1>" in html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    assert '<a href="https://example.org/a">ok</a>' in html
    assert "<img" not in html
