"""The frontend in a real headless Chromium (Debian's `chromium`, driven by Playwright): a
request from a client's login to the Markdown deliverable, with the admin's recommendation,
generated parameter form and execution between, progress followed live; escaping; and each
page's labels, names and landmarks. No page may trip the Content-Security-Policy."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from aifactory import RandomIds
from aifactory._embedded import EmbeddedFactory
from aifactory.config import FactoryConfig
from aifactory.server import serving
from aifactory.workers import ContentGranulator, ReportBuilder
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, fast_config
from tests.servers import UvicornThread
from tests.web.world import Gated, populate

CHROMIUM = Path("/usr/bin/chromium")
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


def _config(home: Path, granulating: threading.Event, building: threading.Event) -> FactoryConfig:
    workers = [Gated(ContentGranulator(), granulating), Gated(ReportBuilder(), building)]
    # Random ids: the factory is opened twice on the same home (prepared, then served).
    return fast_config(home, ids=RandomIds(), workers=workers)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("web")
    granulating, building = threading.Event(), threading.Event()

    async def prepare() -> str:
        async with EmbeddedFactory(_config(home, granulating, building)) as runtime:
            world = await populate(runtime, runtime.config.clock)  # type: ignore[arg-type]
            return world.admin_password

    password = anyio.run(prepare)
    runtime = EmbeddedFactory(_config(home, granulating, building))
    try:
        with UvicornThread(serving(runtime)) as server:
            yield Served(server.url, password, granulating, building)
    finally:
        granulating.set()  # nothing stays held past the tests
        building.set()


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

    def check_accessible(self) -> None:
        assert self.page.evaluate(ACCESSIBILITY) == [], self.page.url

    def close(self) -> None:
        self.context.close()
        assert self.errors == []


def test_a_request_from_login_to_its_deliverable(served: Served, browser: Any) -> None:
    ana = Watched(browser, served.url)
    staff = Watched(browser, served.url)
    page, admin = ana.page, staff.page

    # Ana logs in, and her first try at a request lacks a title.
    ana.log_in(ANA, ANA_PASSWORD)
    expect(page).to_have_url(served.url + "/requests")
    expect(page.locator("#who")).to_contain_text(ANA)
    ana.check_accessible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="New request").click()
    ana.check_accessible()
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
