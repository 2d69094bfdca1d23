"""The frontend in a real headless Chromium (Debian's `chromium`, driven by Playwright): a
request from a client's login to the Markdown deliverable, with the admin's recommendation,
generated parameter form and execution between, progress followed live; escaping; and each
page's labels, names and landmarks. No page may trip the Content-Security-Policy."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from aifactory import RandomIds, WorkerError
from aifactory._embedded import EmbeddedFactory
from aifactory.config import FactoryConfig
from aifactory.server import serving
from aifactory.workers import ContentGranulator, ReportBuilder, Worker, WorkerContext
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, fast_config
from tests.servers import UvicornThread
from tests.web.world import Gated, populate

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
#: Where the browser tests leave screenshots of the main pages (docs/images/web holds the
#: ones the docs show, copied from here).
SHOTS = ROOT / "build" / "screenshots"
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="the browser tests drive Debian's chromium at /usr/bin/chromium "
    "(apt-get install chromium; .ci/run installs it)",
)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
expect = sync_api.expect

#: What each page must have for people using a keyboard or a screen reader: a label for
#: every field, visible text (or a name) for every button and link, the landmarks, a
#: language, and one heading of the page's own (a deliverable's headings are its own).
ACCESSIBILITY = """() => {
  const problems = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!el.labels || el.labels.length === 0) problems.push('no label: ' + (el.name || el.id));
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (!el.textContent.trim() && !el.getAttribute('aria-label')) {
      problems.push('no name: ' + el.outerHTML);
    }
  }
  for (const landmark of ['header', 'nav', 'main']) {
    if (!document.querySelector(landmark)) problems.push('no ' + landmark);
  }
  if (!document.documentElement.lang) problems.push('no lang');
  if (document.querySelectorAll('h1:not(article h1)').length !== 1) problems.push('not one h1');
  return problems;
}"""


@attrs.frozen
class Served:
    url: str
    admin_password: str
    granulating: threading.Event  # opens the content granulator's stage
    building: threading.Event  # opens the report builder's stage
    failing: threading.Event  # while set, the report builder fails


class Failing(Gated):
    """A gated worker that fails every attempt while `failing` is set."""

    def __init__(self, inner: Worker, gate: threading.Event, failing: threading.Event) -> None:
        super().__init__(inner, gate)
        self.failing = failing

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> Any:
        if self.failing.is_set():
            raise WorkerError("the report builder fails on purpose")
        return await super().process(action, inputs, params, ctx)


def _config(home: Path, served: Served) -> FactoryConfig:
    workers = [
        Gated(ContentGranulator(), served.granulating),
        Failing(ReportBuilder(), served.building, served.failing),
    ]
    # Random ids: the factory is opened twice on the same home (prepared, then served).
    return fast_config(home, ids=RandomIds(), workers=workers)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("web")
    events = Served("", "", threading.Event(), threading.Event(), threading.Event())

    async def prepare() -> str:
        async with EmbeddedFactory(_config(home, events)) as runtime:
            world = await populate(runtime, runtime.config.clock)  # type: ignore[arg-type]
            return world.admin_password

    password = anyio.run(prepare)
    runtime = EmbeddedFactory(_config(home, events))
    try:
        with UvicornThread(serving(runtime)) as server:
            yield attrs.evolve(events, url=server.url, admin_password=password)
    finally:
        events.granulating.set()  # nothing stays held past the tests
        events.building.set()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        yield chromium
        chromium.close()


class Watched:
    """A page in its own browser context, recording script errors and CSP violations."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(accept_downloads=True)
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _console(self, message: Any) -> None:
        # A page answered 4xx on purpose (a refused form) is logged as a failed load; what
        # must never happen is a script error or a CSP refusal ("Refused to ...").
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def log_in(self, user: str, password: str, *, staff: bool = False) -> None:
        self.goto("/login")
        self.page.get_by_label("Email").fill(user)
        self.page.get_by_label("Password").fill(password)
        if staff:
            self.page.get_by_label("factory staff (admin login)").check()
        self.page.get_by_role("button", name="Log in").click()

    def check_accessible(self, at: str | None = None) -> None:
        """Check the page against ACCESSIBILITY. `at`: the path (a regular expression) a click
        just went to, waited for first, so that the page checked is the new one and not the
        one being left; a navigation that replaces the document mid-check is checked again."""
        if at is not None:
            expect(self.page).to_have_url(re.compile(re.escape(self.base) + at + r"(\?.*)?$"))
        for _ in range(50):
            self.page.wait_for_load_state()
            try:
                problems = self.page.evaluate(ACCESSIBILITY)
            except sync_api.Error:  # the document was replaced while the script ran
                self.page.wait_for_timeout(100)
                continue
            assert problems == [], self.page.url
            return
        raise AssertionError(f"{self.page.url} kept navigating")

    def screenshot(self, name: str) -> None:
        """Save the page as `SHOTS/name.png` (desktop width), and check it is a PNG."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.set_viewport_size({"width": 1200, "height": 800})
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def close(self) -> None:
        self.context.close()
        assert self.errors == []


def test_a_request_from_login_to_its_deliverable(served: Served, browser: Any) -> None:
    ana = Watched(browser, served.url)
    staff = Watched(browser, served.url)
    page, admin = ana.page, staff.page

    # Ana logs in, and her first try at a request lacks a title.
    ana.goto("/login")
    ana.screenshot("login")
    ana.log_in(ANA, ANA_PASSWORD)
    expect(page).to_have_url(served.url + "/requests")
    expect(page.locator("#who")).to_contain_text(ANA)
    ana.check_accessible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="New request").click()
    ana.check_accessible(at="/requests/new")
    page.get_by_label("Description").fill("Segments, vendors, pricing, adoption.")
    page.get_by_role("button", name="Submit request").click()
    expect(page.locator("#title-error")).to_have_text("title must be 1-200 characters")
    expect(page.get_by_label("Title")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Description")).to_have_value("Segments, vendors, pricing, adoption.")
    page.get_by_label("Title").fill("Market analysis for AI tools")
    page.get_by_label("Urgency").select_option("high")
    page.get_by_label("Category").fill("research")
    page.get_by_role("button", name="Submit request").click()
    expect(page.locator("#request-status")).to_have_text("pending")
    request_path = page.url.removeprefix(served.url)
    ana.goto("/requests")
    expect(page.get_by_role("link", name="Market analysis for AI tools")).to_be_visible()
    ana.screenshot("dashboard")

    # The admin asks for the recommendation, assigns the template (one value out of range
    # first) and executes it.
    staff.log_in(ADMIN, served.admin_password, staff=True)
    expect(admin).to_have_url(served.url + "/admin")
    staff.check_accessible()
    admin.get_by_role("link", name="Market analysis for AI tools").click()
    admin.get_by_role("button", name="Recommend a template").click()  # htmx, in place
    first = admin.locator("ol.recommendations > li").first
    expect(first.locator(".confidence")).to_have_text(re.compile(r"^\d+%$"))
    expect(first.locator("ul.reasons li").first).not_to_be_empty()
    admin.get_by_label("Template for the standard tier").select_option("quick_research")
    admin.get_by_role("button", name="Show its parameters").click()
    staff.check_accessible()
    admin.get_by_label("granularity").fill("9")
    admin.get_by_role("button", name="Assign Quick research").click()
    expect(admin.locator("[id='param.granularity-error']")).to_have_text("must be at most 5")
    expect(admin.get_by_label("granularity")).to_have_attribute("aria-invalid", "true")
    staff.screenshot("admin-request")
    admin.get_by_label("granularity").fill("3")
    admin.get_by_role("button", name="Assign Quick research").click()
    expect(admin.locator("#request-status")).to_have_text("template assigned")
    admin.get_by_role("button", name="Execute quick_research").click()
    expect(admin.locator("#execution-status")).to_have_text("running")
    expect(admin.get_by_role("button", name="Cancel execution")).to_be_visible()

    # Ana follows it live: the page is not reloaded while the stages complete.
    ana.goto(request_path)
    expect(page.locator("#stages-done")).to_have_text("0 of 2 stages done")
    page.evaluate("window.stillTheSamePage = true")
    served.granulating.set()
    expect(page.locator("#stages-done")).to_have_text("1 of 2 stages done")
    expect(page.locator("tr[data-stage='outline'] .status")).to_have_text("succeeded")
    expect(page.locator("tr[data-stage='report'] .status")).to_have_text("running")
    assert page.evaluate("window.stillTheSamePage") is True
    ana.screenshot("request-live")
    ana.check_accessible()
    served.building.set()
    # Settled, the page reloads itself once: final status, cost and the deliverable.
    expect(page.locator("#request-status")).to_have_text("completed", timeout=30_000)
    expect(page.locator("#stages-done")).to_have_text("2 of 2 stages done")
    assert page.evaluate("window.stillTheSamePage") is None

    # The deliverable, in the page and downloaded; the notification.
    page.get_by_role("link", name="report.md", exact=True).click()
    article = page.locator("article.deliverable")
    expect(article.locator("h1").first).to_be_visible()
    ana.check_accessible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download report.md").click()
    assert download.value.suggested_filename == "report.md"
    saved = Path(download.value.path()).read_text()
    assert saved.startswith("#")
    expect(page.locator("#notifications-link .badge")).to_have_text("1")
    page.locator("#notifications-link").click()
    expect(page.locator("ul.notifications")).to_contain_text("is complete")
    ana.check_accessible()

    # Logging out ends it: the pages send her back to the login page.
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("p.notice")).to_have_text("You have logged out.")
    ana.goto("/requests")
    expect(page).to_have_url(served.url + "/login?reason=signin")
    ana.check_accessible()
    ana.close()
    staff.close()


def test_a_title_with_a_script_is_shown_as_text(served: Served, browser: Any) -> None:
    ana = Watched(browser, served.url)
    page = ana.page
    title = '<script>window.injected = 1</script><img src="x" onerror="window.injected = 2">'
    ana.log_in(ANA, ANA_PASSWORD)
    ana.goto("/requests/new")
    page.get_by_label("Title").fill(title)
    page.get_by_role("button", name="Submit request").click()
    expect(page.locator("#request-title")).to_have_text(title)
    ana.goto("/requests")
    expect(page.get_by_role("link", name=title)).to_be_visible()
    assert page.evaluate("window.injected") is None
    assert page.locator("img[src='x']").count() == 0
    ana.close()


#: Whether the page fits the window's width (no sideways scrolling of the whole page; wide
#: tables scroll inside their own box) and the main navigation is on screen.
FITS = """() => {
  const nav = document.querySelector('nav[aria-label=Main]').getBoundingClientRect();
  return {
    fits: document.documentElement.scrollWidth <= window.innerWidth,
    nav: nav.width > 0 && nav.left >= 0 && nav.right <= window.innerWidth,
  };
}"""


def test_staff_administer_clients_users_keys_audit_and_retry(served: Served, browser: Any) -> None:
    staff = Watched(browser, served.url)
    admin = staff.page
    staff.log_in(ADMIN, served.admin_password, staff=True)
    expect(admin).to_have_url(served.url + "/admin")

    # A client organisation, with a field refused first.
    admin.get_by_role("link", name="Clients").click()
    staff.check_accessible(at="/admin/clients")
    admin.get_by_label("Name").fill("Initech")
    admin.get_by_label("Tier").select_option("premium")
    admin.get_by_label("Monthly budget (USD)").fill("-1")
    admin.get_by_role("button", name="Create client").click()
    expect(admin.locator("#f-monthly_budget_usd-error")).not_to_be_empty()
    expect(admin.get_by_label("Monthly budget (USD)")).to_have_attribute("aria-invalid", "true")
    admin.get_by_label("Monthly budget (USD)").fill("80")
    admin.get_by_role("button", name="Create client").click()
    expect(admin.locator("#client-name")).to_have_text("Initech")
    staff.check_accessible()
    admin.get_by_role("link", name="Add a user to Initech").click()

    # A user of it, whose password the staff reset and who logs in with the new one.
    staff.check_accessible(at="/admin/users")
    admin.get_by_label("Email").fill("dana@initech.example")
    admin.get_by_label("Display name").fill("Dana")
    admin.get_by_label("Client (for client users)").select_option(label="Initech")
    admin.get_by_label("Initial password").fill("dana-first-password")
    admin.get_by_role("button", name="Create user").click()
    expect(admin.locator("#user-email")).to_have_text("dana@initech.example")
    staff.check_accessible()
    admin.get_by_role("button", name="Reset password").click()
    password = admin.locator("#new-password").input_value()
    assert len(password) >= 12
    staff.check_accessible()
    # Shown once: not on the user's page again.
    staff.goto(admin.url.removeprefix(served.url).removesuffix("/reset-password"))
    expect(admin.locator("#user-email")).to_have_text("dana@initech.example")
    expect(admin.locator("#new-password")).to_have_count(0)
    dana = Watched(browser, served.url)
    dana.log_in("dana@initech.example", password)
    expect(dana.page).to_have_url(served.url + "/requests")
    expect(dana.page.locator("#budget")).to_contain_text("$0.0000 used of $80.0000")

    # Dana makes an API key: shown once; the staff revoke it.
    dana.page.get_by_role("link", name="API keys").click()
    dana.check_accessible(at="/keys")
    dana.page.get_by_label("Name (what it is for)").fill("nightly export")
    dana.page.get_by_role("button", name="Create key").click()
    key = dana.page.locator("#new-key-value").input_value()
    assert key.startswith("afk_")
    dana.check_accessible()
    dana.goto("/keys")
    assert key not in dana.page.content()
    admin.get_by_role("link", name="All API keys").click()
    staff.check_accessible(at="/admin/keys")
    admin.get_by_role("button", name="Revoke nightly export").click()
    expect(admin).to_have_url(served.url + "/admin/keys")
    expect(admin.locator("tr", has_text="nightly export")).to_contain_text("revoked")
    dana.page.get_by_role("link", name="Usage").click()
    expect(dana.page.locator("h1")).to_contain_text("Usage of Initech")
    dana.check_accessible()
    dana.close()

    # The audit log, filtered to the key's revocation.
    admin.get_by_role("link", name="Audit log").click()
    staff.check_accessible(at="/admin/audit")
    admin.get_by_label("Action (e.g. auth.login, api_key.revoke)").fill("api_key.revoke")
    admin.get_by_role("button", name="Filter").click()
    rows = admin.locator("table.audit tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-action", "api_key.revoke")
    admin.get_by_role("link", name="Workers").click()
    expect(admin.locator("tr[data-worker='report_builder'] .status")).to_have_text("ready")
    staff.check_accessible()

    # A request whose report stage fails; retried from its page, it completes.
    served.failing.set()
    served.granulating.set()
    served.building.set()
    dana_request = Watched(browser, served.url)
    dana_request.log_in("dana@initech.example", password)
    dana_request.goto("/requests/new")
    dana_request.page.get_by_label("Title").fill("Competitor pricing")
    dana_request.page.get_by_role("button", name="Submit request").click()
    expect(dana_request.page.locator("#request-status")).to_have_text("pending")
    request_path = dana_request.page.url.removeprefix(served.url)
    dana_request.close()
    staff.goto("/admin" + request_path)
    admin.get_by_label("Template for the premium tier").select_option("quick_research")
    admin.get_by_role("button", name="Show its parameters").click()
    admin.get_by_role("button", name="Assign Quick research").click()
    admin.get_by_role("button", name="Execute quick_research").click()
    expect(admin.locator("#request-status")).to_have_text("failed", timeout=30_000)
    expect(admin.locator("tr[data-stage='report'] .retries")).not_to_have_text("0")
    staff.check_accessible()
    served.failing.clear()
    admin.get_by_role("button", name="Retry execution").click()
    expect(admin.locator("#request-status")).to_have_text("completed", timeout=30_000)
    expect(admin.locator("#execution-status")).to_have_text("completed")
    expect(admin.locator("#progress")).to_contain_text("run 2")
    staff.close()


def test_the_dashboard_and_the_queue_fit_a_phone(served: Served, browser: Any) -> None:
    for user, password, is_staff, path in (
        (ANA, ANA_PASSWORD, False, "/requests"),
        (ADMIN, served.admin_password, True, "/admin"),
    ):
        phone = Watched(browser, served.url)
        phone.page.set_viewport_size({"width": 360, "height": 740})
        phone.log_in(user, password, staff=is_staff)
        expect(phone.page).to_have_url(served.url + path)
        assert phone.page.evaluate(FITS) == {"fits": True, "nav": True}, path
        phone.check_accessible()
        phone.close()
