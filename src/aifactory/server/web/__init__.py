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
- `/admin`, `/admin/requests/{id}`: the queue by status; recommend, assign a template with
  its parameters, execute, follow, cancel.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..._embedded import EmbeddedFactory
from .admin import AdminPages
from .pages import ClientPages
from .site import STATIC, Site

__all__ = ["web_routes"]


def web_routes(factory: EmbeddedFactory) -> list[BaseRoute]:
    """The frontend's routes for `factory` (none of them under `/api`)."""
    site = Site(factory)
    pages, admin = ClientPages(site), AdminPages()
    page = site.page
    get, post = ["GET"], ["POST"]
    return [
        Route("/", page(pages.home), methods=get),
        Route("/login", pages.login_form, methods=get),
        Route("/login", pages.login, methods=post),
        Route("/login.html", lambda request: site.to_login(request, None), methods=get),
        Route("/logout", page(pages.logout), methods=post),
        Route("/requests", page(pages.dashboard), methods=get),
        Route("/requests/rows", page(pages.rows), methods=get),
        Route("/requests/new", page(pages.new_request), methods=["GET", "POST"]),
        Route("/requests/{request_id}", page(pages.request_page), methods=get),
        Route("/requests/{request_id}/progress", page(pages.progress), methods=get),
        Route("/executions/{execution_id}/cancel", page(pages.cancel), methods=post),
        Route("/deliverables/{deliverable_id}", page(pages.deliverable), methods=get),
        Route("/deliverables/{deliverable_id}/frame", page(pages.frame), methods=get),
        Route("/deliverables/{deliverable_id}/download", page(pages.download), methods=get),
        Route("/notifications", page(pages.notifications), methods=get),
        Route("/notifications/{notification_id}/read", page(pages.mark_read), methods=post),
        Route("/admin", page(admin.queue), methods=get),
        Route("/admin/requests/{request_id}", page(admin.request_page), methods=get),
        Route("/admin/requests/{request_id}/recommend", page(admin.recommend), methods=post),
        Route("/admin/requests/{request_id}/assign", page(admin.assign), methods=post),
        Route("/admin/requests/{request_id}/execute", page(admin.execute), methods=post),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
