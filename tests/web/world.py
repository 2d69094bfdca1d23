"""A factory with a client organisation or two, and a browser's view of its pages (httpx)."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

import anyio.to_thread
import attrs
import httpx

from aifactory import AsyncFactory, ManualClock
from aifactory._embedded import EmbeddedFactory
from aifactory.server import factory_app
from aifactory.transports.factory import InProcessFactoryTransport
from aifactory.workers import Worker, WorkerContext
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, BOB, BOB_PASSWORD

CSRF = "aifactory_csrf"
SESSION = "aifactory_session"


@attrs.frozen
class World:
    """A running factory with an admin, Acme (Ana's) and Globex (Bob's)."""

    runtime: EmbeddedFactory
    clock: ManualClock
    admin_password: str
    acme_id: str
    globex_id: str

    def browser(self, *, https: bool = False) -> httpx.AsyncClient:
        """A cookie-keeping client of the served app (its pages and API), as a browser."""
        scheme = "https" if https else "http"
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=factory_app(self.runtime)),
            base_url=f"{scheme}://factory.test",
        )

    async def api(self, user: str, password: str, kind: str = "client") -> Any:
        """An `AsyncSession` of `user` over the in-process transport, to check outcomes."""
        factory = AsyncFactory(InProcessFactoryTransport(self.runtime))
        return await factory.login(user, password, login_type=kind)


async def populate(runtime: EmbeddedFactory, clock: ManualClock) -> World:
    """The admin, Acme with Ana and Globex with Bob, in `runtime`."""
    password = await runtime.accounts.bootstrap_admin(ADMIN)
    factory = AsyncFactory(InProcessFactoryTransport(runtime))
    admin = await factory.login(ADMIN, password, login_type="admin")
    acme = await admin.clients.create(name="Acme", tier="standard", monthly_budget_usd=50)
    globex = await admin.clients.create(name="Globex", tier="standard", monthly_budget_usd=50)
    await admin.users.create(email=ANA, password=ANA_PASSWORD, client_id=acme.id)
    await admin.users.create(email=BOB, password=BOB_PASSWORD, client_id=globex.id)
    return World(runtime, clock, password, acme.id, globex.id)


def csrf_of(page: str) -> str:
    """The CSRF token in a page's first form."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found[1]


async def log_in(
    browser: httpx.AsyncClient, user: str, password: str, kind: str = "client"
) -> httpx.Response:
    """Open the login page and post its form; the reply (a redirect when it worked)."""
    page = await browser.get("/login")
    return await browser.post(
        "/login",
        data={
            "csrf_token": csrf_of(page.text),
            "username": user,
            "password": password,
            "login_type": kind,
        },
    )


async def post_form(
    browser: httpx.AsyncClient, path: str, data: Mapping[str, str]
) -> httpx.Response:
    """Post a page's form with the browser's CSRF token, as the page's form would."""
    token = browser.cookies.get(CSRF)
    assert token, "the browser holds no CSRF cookie: open a page first"
    return await browser.post(path, data={"csrf_token": token, **data})


class Gated(Worker):
    """A worker held until the test opens `gate` (a stage in flight for as long as a test
    watches it); `overrides` replace stage parameters of the template's."""

    def __init__(
        self, inner: Worker, gate: threading.Event, overrides: Mapping[str, Any] | None = None
    ) -> None:
        self.inner = inner
        self.info = inner.info  # type: ignore[misc]
        self.defaults = inner.defaults  # type: ignore[misc]
        self.gate = gate
        self.overrides = dict(overrides or {})

    def check_input(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> None:
        self.inner.check_input(action, inputs, {**params, **self.overrides})

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> Any:
        # Abandoned on cancel: a cancelled execution does not wait for the gate.
        await anyio.to_thread.run_sync(self.gate.wait, 60, abandon_on_cancel=True)
        return await self.inner.process(action, inputs, {**params, **self.overrides}, ctx)
