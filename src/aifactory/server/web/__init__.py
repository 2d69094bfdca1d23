"""The web frontend: the seed's login page, client dashboard and admin console, served at
`/` beside the API by the same app.

Server-rendered Jinja pages over the same operations as the API (each page acts as the
person whose session cookie it carries, through the in-process transport), htmx packaged as
a static file for the live parts (no build step, no CDN), session and CSRF cookies
`HttpOnly` and `SameSite=Strict`, a CSP without inline scripts. See `docs/web.md`.

Its pages:
- `/login`, `/logout`: log in (client or admin login type), log out;
- `/requests`, `/requests/new`, `/requests/{id}`: a client's requests, a new one, one with
  its live progress and deliverables;
- `/deliverables/{id}` (and `/download`, `/frame`): a deliverable shown safely, downloaded,
  its HTML in a sandbox;
- `/notifications`: your notifications (the header counts the unread);
- `/keys`, `/usage` (and `/usage.csv`): your API keys (a new one shown once; revoke), your
  organisation's usage in a month against its budget;
- `/admin`, `/admin/requests/{id}`: the queue by status; recommend, assign a template with
  its parameters, execute, follow live (`/requests/{id}/live`, server-sent events), cancel,
  retry, resume;
- `/admin/clients`, `/admin/users`, `/admin/keys`, `/admin/audit`, `/admin/workers`:
  client organisations, users, everyone's API keys, the audit log, the workers' health.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..._embedded import EmbeddedFactory
from .account import AccountPages
from .admin import AdminPages
from .live import progress_stream
from .pages import ClientPages
from .site import STATIC, Site
from .staff import StaffPages

__all__ = ["web_routes"]


def web_routes(factory: EmbeddedFactory) -> list[BaseRoute]:
    """The frontend's routes for `factory` (none of them under `/api`)."""
    site = Site(factory)
    pages, admin = ClientPages(site), AdminPages()
    account, staff = AccountPages(), StaffPages()
    page = site.page
    get, post, both = ["GET"], ["POST"], ["GET", "POST"]
    return [
        Route("/", page(pages.home), methods=get),
        Route("/login", pages.login_form, methods=get),
        Route("/login", pages.login, methods=post),
        Route("/login.html", lambda request: site.to_login(request, None), methods=get),
        Route("/logout", page(pages.logout), methods=post),
        Route("/requests", page(pages.dashboard), methods=get),
        # The dashboard's rows refresh every few seconds while a request runs: part of a
        # page view already counted against the rate limit (docs/web.md).
        Route("/requests/rows", page(pages.rows, counted=False), methods=get),
        Route("/requests/new", page(pages.new_request), methods=["GET", "POST"]),
        Route("/requests/{request_id}", page(pages.request_page), methods=get),
        Route("/requests/{request_id}/progress", page(pages.progress), methods=get),
        Route("/requests/{request_id}/live", page(progress_stream), methods=get),
        Route("/executions/{execution_id}/cancel", page(pages.cancel), methods=post),
        Route("/deliverables/{deliverable_id}", page(pages.deliverable), methods=get),
        Route("/deliverables/{deliverable_id}/frame", page(pages.frame), methods=get),
        Route("/deliverables/{deliverable_id}/download", page(pages.download), methods=get),
        Route("/notifications", page(pages.notifications), methods=get),
        Route("/notifications/{notification_id}/read", page(pages.mark_read), methods=post),
        Route("/keys", page(account.keys), methods=both),
        Route("/keys/{key_id}/revoke", page(account.revoke_key), methods=post),
        Route("/usage", page(account.usage), methods=get),
        Route("/usage.csv", page(account.usage_csv), methods=get),
        Route("/admin", page(admin.queue), methods=get),
        Route("/admin/requests/{request_id}", page(admin.request_page), methods=get),
        Route("/admin/requests/{request_id}/recommend", page(admin.recommend), methods=post),
        Route("/admin/requests/{request_id}/assign", page(admin.assign), methods=post),
        Route("/admin/requests/{request_id}/execute", page(admin.execute), methods=post),
        Route("/admin/executions/{execution_id}/retry", page(staff.retry), methods=post),
        Route("/admin/executions/{execution_id}/resume", page(staff.resume), methods=post),
        Route("/admin/clients", page(staff.clients), methods=both),
        Route("/admin/clients/{client_id}", page(staff.client), methods=both),
        Route("/admin/users", page(staff.users), methods=both),
        Route("/admin/users/{user_id}", page(staff.user), methods=get),
        Route("/admin/users/{user_id}/{action}", page(staff.user_action), methods=post),
        Route("/admin/keys", page(staff.keys), methods=get),
        Route("/admin/audit", page(staff.audit), methods=get),
        Route("/admin/workers", page(staff.workers), methods=get),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
