"""What keeps the pages safe: the session and CSRF cookies, the CSRF check, and the headers
every page carries.

The session token lives in a cookie the page's scripts cannot read (`HttpOnly`), that no
other site's page sends (`SameSite=Strict`), and that travels only over TLS when the page
was served over HTTPS (`Secure`). Every state-changing form carries a CSRF token that must
equal the `aifactory_csrf` cookie (the double-submit pattern; the cookie is `SameSite=Strict`
too, and renewed at each login). The Content-Security-Policy allows scripts from this
origin only (htmx, packaged), so an injected `<script>` never runs even if escaping failed;
a deliverable's HTML is served under a policy of its own, `sandbox`ed, into a sandboxed
frame.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "DELIVERABLE_CSP",
    "PAGE_CSP",
    "SESSION_COOKIE",
    "clear_session",
    "csrf_matches",
    "csrf_token",
    "page_headers",
    "set_csrf",
    "set_session",
]

SESSION_COOKIE = "aifactory_session"
CSRF_COOKIE = "aifactory_csrf"
CSRF_FIELD = "csrf_token"

#: The pages' policy: everything from this origin only, no inline script or style, no
#: plugins, frames only of this origin (a deliverable's sandboxed view), and this page in no
#: other site's frame.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
#: A deliverable's HTML: its own inline styles and embedded images, nothing else, and a
#: sandbox (no scripts, a unique origin) even when opened outside its frame.
DELIVERABLE_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, token: str, lifetime_s: float) -> None:
    """Put the session `token` in the session cookie, kept for the session's remaining
    `lifetime_s` (a relative age: the browser's clock need not agree with the factory's)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(0, int(lifetime_s)),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_session(response: Response, request: Request) -> None:
    """Tell the browser to forget the session cookie."""
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )


def csrf_token(request: Request) -> str:
    """The CSRF token for the forms of the page being rendered: the browser's CSRF cookie, or
    a new one (which `set_csrf` must then send)."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def set_csrf(response: Response, request: Request, token: str) -> None:
    """Send the CSRF cookie `token` if the browser does not hold it already."""
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE, token, path="/", httponly=True, samesite="strict", secure=_secure(request)
        )


def csrf_matches(request: Request, form: Mapping[str, str]) -> bool:
    """Whether a posted form's CSRF token is the browser's CSRF cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), sent.encode())


def page_headers(response: Response, *, private: bool = True) -> Response:
    """Add the headers every page carries (policy, no sniffing, no framing, no caching of
    what a logged-in person sees) and return `response`."""
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if private:
        response.headers["Cache-Control"] = "no-store"
    return response
