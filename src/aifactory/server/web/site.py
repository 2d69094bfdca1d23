"""The frame every page shares: templates, the logged-in visit, and how errors show.

Each page runs as the person whose session cookie it carries, through an `AsyncSession` over
the in-process transport: the same operation table, permissions, validation and errors as
the HTTP API, with no rule of its own. A missing or revoked session sends the browser to the
login page; an expired one too, with a message. Posted forms are read and their CSRF token
checked before a page sees them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..._embedded import EmbeddedFactory
from ..._exceptions import AIFactoryError, AuthenticationError, SessionExpiredError
from ...client import AsyncFactory, AsyncSession
from ...kam.ratelimit import RateLimiter
from ...transports.factory import InProcessFactoryTransport
from .._request_ids import log_error
from .forms import read_form
from .security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    clear_session,
    csrf_matches,
    csrf_token,
    page_headers,
    set_csrf,
)

__all__ = ["STATIC", "Site", "Visit", "render_markdown"]

HERE = Path(__file__).parent
STATIC = HERE / "static"

# CommonMark without raw HTML: a deliverable's `<script>` stays text; links with unsafe
# schemes (javascript:, vbscript:, file:, data: other than images) are refused by the parser.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def render_markdown(text: str) -> Markup:
    """Markdown as safe HTML: raw HTML in it is escaped, unsafe links are not made links."""
    return Markup(_MARKDOWN.render(text))  # noqa: S704 - the renderer escapes (html=False)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name: user text is always escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["csrf_field"] = CSRF_FIELD
    env.filters["label"] = lambda value: str(value).replace("_", " ")
    env.filters["usd"] = lambda value: f"{Decimal(value):.4f}"
    env.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M UTC")
    # A select's options whose text is their value.
    env.filters["zip_self"] = lambda values: [(value, value) for value in values]
    return env


class Site:
    """The pages' shared machinery for one factory: its client, templates and page frame."""

    def __init__(self, factory: EmbeddedFactory) -> None:
        self.clock = factory.config.clock
        self.transport = InProcessFactoryTransport(factory)
        self.client = AsyncFactory(self.transport)
        self.env = _environment()
        self._store = factory.store
        self._limiter = RateLimiter(factory.store, self.clock)
        self._rate_limits = factory.config.api_rate_limits

    async def limit(self, session: AsyncSession) -> None:
        """Count a page view against the client's API rate limit (the tier's requests per
        minute, shared with its API calls; staff are not limited), as the HTTP API counts a
        call. Raises `QuotaExceededError` (429) past it."""
        client_id = session.user.client_id
        if client_id is None or not self._rate_limits:
            return
        client = await self._store.get_client(client_id)
        await self._limiter.take(client.id, client.limits.rate_limit_per_minute)

    async def render(
        self,
        request: Request,
        name: str,
        *,
        status: int = 200,
        session: AsyncSession | None = None,
        **context: Any,
    ) -> Response:
        """Template `name` as a page (or a fragment, for names starting with `_`), with the
        CSRF token, the person and their unread notifications."""
        token = csrf_token(request)
        unread = 0
        if session is not None and not name.startswith("_"):
            unread = len(await session.notifications.list(unread_only=True))
        html = self.env.get_template(name).render(
            csrf_token=token,
            me=session.user if session is not None else None,
            unread=unread,
            path=request.url.path,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        set_csrf(response, request, token)
        return page_headers(response)

    def to_login(self, request: Request, reason: str | None) -> Response:
        """Send the browser to the login page (with `reason`: `expired`, `signin`), forgetting
        a session cookie that no longer works. An htmx request is told to go there."""
        target = "/login" + (f"?{urlencode({'reason': reason})}" if reason else "")
        response: Response
        if request.headers.get("hx-request") == "true":
            response = Response(status_code=200, headers={"HX-Redirect": target})
        else:
            response = RedirectResponse(target, status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            clear_session(response, request)
        return page_headers(response)

    async def error(
        self, request: Request, error: AIFactoryError, session: AsyncSession | None = None
    ) -> Response:
        """An error page saying what the operation said, with its status."""
        log_error(request, error, error.status)
        return await self.render(
            request, "error.html", status=error.status, session=session, error=error
        )

    async def refuse_csrf(self, request: Request, session: AsyncSession | None) -> Response:
        """403: a form posted without this site's CSRF token."""
        return await self.render(
            request,
            "error.html",
            status=403,
            session=session,
            error=AIFactoryError(
                "This form did not come from this site's page, or it is too old: "
                "reload the page and try again."
            ),
        )

    def fragment(self, request: Request, name: str, session: AsyncSession, **context: Any) -> str:
        """Template `name` as HTML text for `session` (a part of a page sent by other means
        than a page's answer: an event stream's)."""
        return self.env.get_template(name).render(
            csrf_token=csrf_token(request),
            me=session.user,
            unread=0,
            path=request.url.path,
            **context,
        )

    def page(
        self, handler: Callable[[Visit], Awaitable[Response]], *, counted: bool = True
    ) -> PageEndpoint:
        """The endpoint of a page for logged-in people: the session from its cookie, the view
        counted against the client's rate limit (unless not `counted`), a posted form read
        and CSRF-checked, and any error the operations raise shown as a page."""

        async def endpoint(request: Request) -> Response:
            token = request.cookies.get(SESSION_COOKIE)
            if not token:
                return self.to_login(request, "signin")
            try:
                session = await self.client.session(token)
            except SessionExpiredError:
                return self.to_login(request, "expired")
            except AuthenticationError:
                return self.to_login(request, "signin")
            form: dict[str, str] = {}
            try:
                if counted:
                    await self.limit(session)
                if request.method == "POST":
                    form = await read_form(request)
                    if not csrf_matches(request, form):
                        return await self.refuse_csrf(request, session)
                return await handler(Visit(self, request, session, form))
            except SessionExpiredError:
                return self.to_login(request, "expired")
            except AIFactoryError as exc:
                return await self.error(request, exc, session)

        endpoint.__name__ = handler.__name__
        return endpoint


PageEndpoint = Callable[[Request], Awaitable[Response]]


@attrs.frozen
class Visit:
    """One logged-in page request: the site, the HTTP request, the person's session and the
    posted form (empty for a GET)."""

    site: Site
    request: Request
    session: AsyncSession
    form: dict[str, str]

    @property
    def is_htmx(self) -> bool:
        """Whether htmx sent this request (it wants a fragment, not a page)."""
        return self.request.headers.get("hx-request") == "true"

    def arg(self, name: str) -> str:
        """A path segment."""
        return str(self.request.path_params[name])

    async def render(self, name: str, *, status: int = 200, **context: Any) -> Response:
        """Template `name` for this person."""
        return await self.site.render(
            self.request, name, status=status, session=self.session, **context
        )

    def redirect(self, target: str) -> Response:
        """See other: `target` (after a form has done its work)."""
        return page_headers(RedirectResponse(target, status_code=303))
