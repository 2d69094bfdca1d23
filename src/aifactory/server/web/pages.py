"""The pages everyone has: login and logout, the requests dashboard, a new request, a
request with its live progress and deliverables, and notifications.

Every page is a thin reading of operations (`session.requests.list()`,
`session.deliverables.download()`, ...); what a person may see or do is what the operation
table lets their role do, and the messages next to fields are the operations' own.
"""

from __future__ import annotations

import math
import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..._exceptions import (
    AIFactoryError,
    AuthenticationError,
    BadInputError,
    NotFoundError,
    QuotaExceededError,
)
from ...client import AsyncSession
from ...models import Deliverable, Execution, ExecutionStatus, RequestStatus, Urgency
from ...models import Request as WorkRequest
from .forms import field_errors, read_form
from .security import DELIVERABLE_CSP, csrf_matches, page_headers, set_csrf, set_session
from .site import Site, Visit, render_markdown

__all__ = ["ClientPages"]

_LOGIN_REASONS = {
    "expired": "Your session has expired: log in again.",
    "signin": "Log in to continue.",
    "bye": "You have logged out.",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def home_of(session: AsyncSession) -> str:
    """Where a person starts: staff at the queue, clients at their requests."""
    return "/admin" if session.user.role.is_staff else "/requests"


#: How many of an execution's latest events its timeline shows.
TIMELINE_EVENTS = 30


async def progress_context(session: AsyncSession, request: WorkRequest) -> dict[str, Any]:
    """What the progress section shows of a request: its execution, stages (attempts,
    retries, time, tokens, cost), latest events, whether it is still running (the section
    then follows it live), and which controls staff have (`retry`, `resume`)."""
    if request.execution_id is None:
        return {
            "req": request,
            "execution": None,
            "stages": [],
            "events": [],
            "live": False,
            "controls": (),
        }
    execution = await session.executions.get(request.execution_id)
    stages = await session.executions.stages(request.execution_id)
    events = await session.executions.poll(request.execution_id)
    return {
        "req": request,
        "execution": execution,
        "stages": stages,
        "events": events[-TIMELINE_EVENTS:],
        "live": request.status is RequestStatus.EXECUTING,
        "controls": await _controls(session, request, execution),
    }


async def _controls(
    session: AsyncSession, request: WorkRequest, execution: Execution
) -> tuple[str, ...]:
    # Offered when the operation would take them: retry a failed or cancelled execution;
    # resume one whose replica is gone, or one that ended without its request settled.
    if not session.user.role.is_staff:
        return ()
    if execution.status in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED):
        unsettled = request.status is RequestStatus.EXECUTING
        return ("resume",) if unsettled else ("retry",)
    if execution.status.is_final:
        return ("resume",) if request.status is RequestStatus.EXECUTING else ()
    owners = {o.execution_id: o for o in await session.executions.owners()}
    owner = owners.get(execution.id)
    # Not held by a live replica: its replica is gone, or it stopped (and nothing that
    # recovers work has taken it up yet).
    stalled = owner is not None and owner.state in ("interrupted", "waiting")
    return ("resume",) if stalled else ()


class ClientPages:
    """Login, logout and the pages of a client's work (staff may open them too)."""

    def __init__(self, site: Site) -> None:
        self.site = site

    # -- logging in and out ----------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """The login page (a person already logged in goes to their start page)."""
        reason = request.query_params.get("reason", "")
        return await self.site.render(
            request,
            "login.html",
            notice=_LOGIN_REASONS.get(reason),
            username="",
            login_type="client",
            errors={},
        )

    async def login(self, request: Request) -> Response:
        """Check the credentials through `auth.login`; on success set the session cookie
        (and a fresh CSRF cookie) and go to the start page."""
        try:
            form = await read_form(request)
        except AIFactoryError as exc:
            return await self.site.error(request, exc)
        if not csrf_matches(request, form):
            return await self.site.refuse_csrf(request, None)
        username, login_type = form.get("username", "").strip(), form.get("login_type", "client")
        try:
            # The browser's address: failed logins lock it as they lock the account.
            result = await self.site.transport.login(
                username,
                form.get("password", ""),
                login_type,
                client_address=request.client.host if request.client else None,
            )
        except (AuthenticationError, BadInputError, QuotaExceededError) as exc:
            # The service words it: never whether the account exists; a lock says how long.
            response = await self.site.render(
                request,
                "login.html",
                status=exc.status,
                notice=None,
                username=username,
                login_type=login_type if login_type in ("client", "admin") else "client",
                errors=field_errors(exc) if isinstance(exc, BadInputError) else {"": exc.message},
            )
            wait = exc.details.get("retry_after_s")
            if isinstance(exc, QuotaExceededError) and isinstance(wait, int | float):
                response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        target = "/admin" if result.user.role.is_staff else "/requests"
        response = RedirectResponse(target, status_code=303)
        lifetime = result.expires_at - self.site.clock.now()
        set_session(response, request, result.session_token, lifetime.total_seconds())
        # A new CSRF token for the new session: one planted before login is worth nothing.
        set_csrf(response, request, secrets.token_urlsafe(32))
        return page_headers(response)

    async def logout(self, visit: Visit) -> Response:
        """End the session (`auth.logout`) and forget its cookie."""
        await visit.session.logout()
        return self.site.to_login(visit.request, "bye")

    async def home(self, visit: Visit) -> Response:
        """`/`: the person's start page."""
        return visit.redirect(home_of(visit.session))

    # -- requests ------------------------------------------------------------------------

    async def dashboard(self, visit: Visit) -> Response:
        """The organisation's requests with their status, and the budget this month."""
        session = visit.session
        requests = await session.requests.list()
        client = None
        if session.user.client_id is not None:
            client = await session.clients.get(session.user.client_id)
        rows = await self._rows(session, requests)
        return await visit.render("dashboard.html", rows=rows, client=client)

    async def rows(self, visit: Visit) -> Response:
        """The dashboard's table rows (polled while a request runs)."""
        rows = await self._rows(visit.session, await visit.session.requests.list())
        return await visit.render("_request_rows.html", rows=rows)

    async def _rows(
        self, session: AsyncSession, requests: list[WorkRequest]
    ) -> list[dict[str, Any]]:
        rows = []
        for req in requests:
            execution = None
            if req.status is RequestStatus.EXECUTING and req.execution_id:
                execution = await session.executions.get(req.execution_id)
            rows.append({"req": req, "execution": execution})
        return rows

    async def new_request(self, visit: Visit) -> Response:
        """The form of a new request; posted, it submits it (`requests.create`) and shows
        the operation's refusal next to the field it names."""
        session = visit.session
        clients = await session.clients.list() if session.user.role.is_staff else []
        values = {"title": "", "description": "", "urgency": "normal", "category": "general"}
        values["client_id"] = ""
        if visit.request.method == "POST":
            values |= {name: visit.form.get(name, "") for name in values}
            try:
                created = await session.requests.create(
                    title=values["title"],
                    description=values["description"],
                    urgency=values["urgency"],
                    category=values["category"],
                    client_id=values["client_id"] or None,
                )
            except (BadInputError, NotFoundError, QuotaExceededError) as exc:
                return await visit.render(
                    "request_new.html",
                    status=exc.status,
                    values=values,
                    errors=field_errors(exc),
                    urgencies=list(Urgency),
                    clients=clients,
                )
            return visit.redirect(f"/requests/{created.id}")
        return await visit.render(
            "request_new.html",
            values=values,
            errors={},
            urgencies=list(Urgency),
            clients=clients,
        )

    async def request_page(self, visit: Visit) -> Response:
        """One request: its status, its execution's stages and cost, its deliverables."""
        session = visit.session
        req = await session.requests.get(visit.arg("request_id"))
        deliverables = await session.deliverables.list(req.id)
        return await visit.render(
            "request.html",
            deliverables=deliverables,
            **await progress_context(session, req),
        )

    async def progress(self, visit: Visit) -> Response:
        """The live part of a request's page. Once the request has settled, the whole page
        is reloaded (its deliverables and final cost appear)."""
        req = await visit.session.requests.get(visit.arg("request_id"))
        context = await progress_context(visit.session, req)
        response = await visit.render("_progress.html", **context)
        if not context["live"] and visit.request.query_params.get("was") == "live":
            response.headers["HX-Refresh"] = "true"
        return response

    async def cancel(self, visit: Visit) -> Response:
        """Cancel an execution (`executions.cancel`: clients their own) and go back to its
        request."""
        execution = await visit.session.executions.cancel(visit.arg("execution_id"))
        prefix = "/admin/requests/" if visit.session.user.role.is_staff else "/requests/"
        return visit.redirect(prefix + (execution.request_id or ""))

    # -- deliverables ----------------------------------------------------------------------

    async def deliverable(self, visit: Visit) -> Response:
        """A deliverable in the page: Markdown rendered safely (raw HTML in it stays text),
        HTML in a sandboxed frame, anything else as a download."""
        session = visit.session
        item = await session.deliverables.get(visit.arg("deliverable_id"))
        req = await session.requests.get(item.request_id)
        body = None
        if _kind(item) == "markdown":
            text = (await session.deliverables.download(item.id)).decode("utf-8", "replace")
            body = render_markdown(text)
        return await visit.render(
            "deliverable.html", item=item, req=req, kind=_kind(item), body=body
        )

    async def frame(self, visit: Visit) -> Response:
        """An HTML deliverable for its sandboxed frame: served under a `sandbox` policy of
        its own (no scripts, a unique origin), framed by this site only."""
        item = await visit.session.deliverables.get(visit.arg("deliverable_id"))
        if _kind(item) != "html":
            raise NotFoundError("no HTML view of this deliverable", details={"id": item.id})
        data = await visit.session.deliverables.download(item.id)
        return Response(
            data,
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": DELIVERABLE_CSP,
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "SAMEORIGIN",
                "Cache-Control": "no-store",
            },
        )

    async def download(self, visit: Visit) -> Response:
        """A deliverable's bytes (sha256-verified by the operation), as an attachment."""
        item = await visit.session.deliverables.get(visit.arg("deliverable_id"))
        data = await visit.session.deliverables.download(item.id)
        name = _SAFE_NAME.sub("_", item.filename).strip("._") or "deliverable"
        return Response(
            data,
            media_type=item.media_type if _kind(item) != "html" else "application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox; default-src 'none'",
                "Cache-Control": "no-store",
            },
        )

    # -- notifications ---------------------------------------------------------------------

    async def notifications(self, visit: Visit) -> Response:
        """Your notifications, newest first; unread ones can be marked read."""
        items = await visit.session.notifications.list()
        return await visit.render("notifications.html", items=items)

    async def mark_read(self, visit: Visit) -> Response:
        """Mark one notification read (`notifications.mark_read`)."""
        await visit.session.notifications.mark_read(visit.arg("notification_id"))
        return visit.redirect("/notifications")


def _kind(item: Deliverable) -> str:
    media = item.media_type.split(";")[0].strip().lower()
    return {"text/markdown": "markdown", "text/html": "html"}.get(media, "file")
