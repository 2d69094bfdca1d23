"""A person's own things: their API keys (a new key shown once, revoke) and their
organisation's usage this month, with its CSV.

As everywhere in the frontend, each page is a reading of operations (`api_keys.*`,
`clients.usage`, `clients.usage_csv`): a client sees only its own keys and its own
organisation's usage because the operations say so, not because these pages filter.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response

from ..._exceptions import BadInputError, PermissionDeniedError
from .forms import field_errors
from .security import page_headers
from .site import Visit

__all__ = ["AccountPages", "local_target"]

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def local_target(text: str, default: str) -> str:
    """`text` if it is a path of this site (where a form may send the browser back to),
    else `default`: never another origin (`//host`, `https:`), never a backslash trick."""
    if text.startswith("/") and not text.startswith("//") and "\\" not in text:
        return text
    return default


class AccountPages:
    """API keys and usage, for everyone logged in."""

    async def keys(self, visit: Visit) -> Response:
        """Your API keys; posted, a new one (`api_keys.create`), shown on this page only."""
        session = visit.session
        created = None
        errors: dict[str, str] = {}
        status = 200
        if visit.request.method == "POST":
            try:
                created = await session.api_keys.create(name=visit.form.get("name", "").strip())
                status = 201
            except (BadInputError, PermissionDeniedError) as exc:
                errors, status = field_errors(exc), exc.status
        keys = await session.api_keys.list(user_id=session.user.id)
        return await visit.render(
            "keys.html", status=status, keys=keys, created=created, errors=errors
        )

    async def revoke_key(self, visit: Visit) -> Response:
        """Revoke a key (`api_keys.revoke`: clients their own) and go back where the form
        said (a path of this site)."""
        await visit.session.api_keys.revoke(visit.arg("key_id"))
        return visit.redirect(local_target(visit.form.get("back", ""), "/keys"))

    def _usage_query(self, visit: Visit) -> tuple[str | None, str | None]:
        query = visit.request.query_params
        month = query.get("month", "").strip() or None
        if month is not None and not _MONTH.match(month):
            raise BadInputError("month is YYYY-MM", details={"field": "month"})
        client_id = visit.session.user.client_id or query.get("client_id", "").strip() or None
        return client_id, month

    async def usage(self, visit: Visit) -> Response:
        """The organisation's usage in a month (`clients.usage`; staff name the client):
        executions, model calls, tokens and costs, by template and by worker, against the
        budget."""
        client_id, month = self._usage_query(visit)
        if client_id is None:  # staff, with no client named: choose one
            return visit.redirect("/admin/clients")
        session = visit.session
        report = await session.clients.usage(client_id, month=month)
        client = await session.clients.get(client_id)
        context: dict[str, Any] = {"report": report, "client": client}
        return await visit.render("usage.html", **context)

    async def usage_csv(self, visit: Visit) -> Response:
        """The same report as CSV (`clients.usage_csv`), as a download."""
        client_id, month = self._usage_query(visit)
        if client_id is None:
            raise BadInputError("name the client", details={"field": "client_id"})
        data = await visit.session.clients.usage_csv(client_id, month=month)
        report_month = month or visit.site.clock.now().strftime("%Y-%m")
        return page_headers(
            Response(
                data,
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="usage-{report_month}.csv"'},
            )
        )
