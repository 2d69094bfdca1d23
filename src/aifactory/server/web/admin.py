"""The staff's pages: the queue of requests by status, and a request's page with the
recommendation, the template and its parameter form, execute, and live progress.

The parameter form is generated from the chosen template's parameter schema (types, enums,
ranges, defaults, which the client's tier sees and may edit); the values it posts are
checked by `requests.assign_template` alone, and each refusal shows next to its field.
A client who opens these pages is turned away before anything is shown; what they would do
there is staff-only in the operation table anyway (`clients.list`, `templates.recommend`,
`requests.assign_template`, `requests.execute`).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..._exceptions import AIFactoryError, BadInputError, PermissionDeniedError
from ...models import Recommendation, RequestStatus
from .forms import field_errors, parameter_fields, parameters_from_form
from .pages import progress_context
from .site import Visit

__all__ = ["AdminPages", "staff_only"]

#: The statuses in which a request with a template may be (re)started from its page.
_STARTABLE = (RequestStatus.TEMPLATE_ASSIGNED, RequestStatus.FAILED, RequestStatus.CANCELLED)


def staff_only(visit: Visit) -> None:
    # Which pages to show a role is the frontend's to say; what the role may do stays the
    # table's (the operations these pages post are staff-only there).
    if not visit.session.user.role.is_staff:
        raise PermissionDeniedError("these pages are for the factory's staff")


class AdminPages:
    """The queue and a request's page for admins and account managers."""

    async def queue(self, visit: Visit) -> Response:
        """Every request, grouped by status (optionally one status), with its client."""
        staff_only(visit)
        session = visit.session
        clients = {c.id: c for c in await session.clients.list()}
        wanted = visit.request.query_params.get("status", "")
        statuses = [s for s in RequestStatus if not wanted or s.value == wanted]
        if not statuses:
            raise BadInputError(f"unknown status {wanted!r}", details={"field": "status"})
        requests = await session.requests.list()
        groups = [(s, [r for r in requests if r.status is s]) for s in statuses]
        return await visit.render(
            "admin_queue.html",
            groups=groups,
            clients=clients,
            wanted=wanted,
            statuses=list(RequestStatus),
        )

    async def request_page(self, visit: Visit) -> Response:
        """A request for staff: the template chooser, the parameter form, execute, progress."""
        staff_only(visit)
        return await self._page(visit)

    async def _page(
        self,
        visit: Visit,
        *,
        status: int = 200,
        chosen: str | None = None,
        form: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        recommendations: list[Recommendation] | None = None,
    ) -> Response:
        session = visit.session
        req = await session.requests.get(visit.arg("request_id"))
        client = await session.clients.get(req.client_id)
        templates = await session.templates.list(tier=client.tier)
        chosen = chosen or visit.request.query_params.get("template") or req.template_name
        template = None
        fields: list[Any] = []
        if chosen:
            template = await session.templates.get(chosen)
            values: dict[str, Any] = (
                form
                if form is not None
                else (req.parameters if chosen == req.template_name else {})
            )
            fields = parameter_fields(template, client.tier, values, errors)
        return await visit.render(
            "admin_request.html",
            status=status,
            client=client,
            templates=templates,
            template=template,
            fields=fields,
            errors=errors or {},
            recommendations=recommendations,
            req_id=req.id,
            startable=req.template_name is not None and req.status in _STARTABLE,
            deliverables=await session.deliverables.list(req.id),
            **await progress_context(session, req),
        )

    async def recommend(self, visit: Visit) -> Response:
        """Ask for the recommendation (`templates.recommend`: it is audited, and charged when
        a model answers, so it is asked for, not shown on every view)."""
        staff_only(visit)
        found = await visit.session.templates.recommend(visit.arg("request_id"))
        if visit.is_htmx:
            req_id = visit.arg("request_id")
            return await visit.render("_recommendation.html", recommendations=found, req_id=req_id)
        return await self._page(visit, recommendations=found)

    async def assign(self, visit: Visit) -> Response:
        """Assign the chosen template with the parameters of the generated form
        (`requests.assign_template`); its refusals are shown next to their fields."""
        staff_only(visit)
        session = visit.session
        name = visit.form.get("template", "")
        req = await session.requests.get(visit.arg("request_id"))
        client = await session.clients.get(req.client_id)
        try:
            template = await session.templates.get(name)
            parameters = parameters_from_form(template, client.tier, visit.form)
            await session.requests.assign_template(req.id, name, parameters=parameters)
        except (BadInputError, PermissionDeniedError) as exc:
            return await self._page(
                visit, status=exc.status, chosen=name, form=visit.form, errors=field_errors(exc)
            )
        return visit.redirect(f"/admin/requests/{req.id}")

    async def execute(self, visit: Visit) -> Response:
        """Start the request's pipeline (`requests.execute`) and follow it on its page."""
        staff_only(visit)
        req_id = visit.arg("request_id")
        try:
            await visit.session.requests.execute(req_id)
        except AIFactoryError as exc:
            if exc.status >= 500:
                raise
            return await self._page(visit, status=exc.status, errors=field_errors(exc))
        return visit.redirect(f"/admin/requests/{req_id}")
