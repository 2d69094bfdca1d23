"""The staff's administration pages: client organisations, users, everyone's API keys, the
audit log, the workers, and retrying or resuming an execution.

Each form posts to one operation (`clients.create`, `clients.update`, `users.create`,
`users.deactivate`, `users.reset_password`, `api_keys.revoke`, `executions.retry`, ...),
which decides alone whether the person may do it (an account manager manages client users
only; the audit log is for admins) and whether the values are good; a refusal is shown next
to the field it names. A new user's or a reset password is shown once, on the page that
answers the form, and never again.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..._exceptions import (
    BadInputError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
)
from ...models import Role, Tier
from .admin import staff_only
from .forms import field_errors
from .site import Visit

__all__ = ["StaffPages"]

#: The refusals a form shows next to its fields (anything else is an error page).
_FORM_ERRORS = (
    BadInputError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
)
_AUDIT_LIMITS = (50, 100, 500, 1000)


class StaffPages:
    """Clients, users, API keys, audit and workers, for admins and account managers."""

    # -- clients ---------------------------------------------------------------------------

    async def clients(self, visit: Visit) -> Response:
        """Every client organisation; posted, a new one (`clients.create`)."""
        staff_only(visit)
        session = visit.session
        values = {"name": "", "tier": "standard", "monthly_budget_usd": "100"}
        errors: dict[str, str] = {}
        status = 200
        if visit.request.method == "POST":
            values |= {k: visit.form.get(k, "").strip() for k in values}
            try:
                created = await session.clients.create(**values)
            except _FORM_ERRORS as exc:
                errors, status = field_errors(exc), exc.status
            else:
                return visit.redirect(f"/admin/clients/{created.id}")
        return await visit.render(
            "staff_clients.html",
            status=status,
            clients=await session.clients.list(),
            tiers=list(Tier),
            values=values,
            errors=errors,
        )

    async def client(self, visit: Visit) -> Response:
        """One client: its name, tier, budget and whether it is active (posted:
        `clients.update`), its users and a link to its usage."""
        staff_only(visit)
        session = visit.session
        client = await session.clients.get(visit.arg("client_id"))
        errors: dict[str, str] = {}
        status = 200
        saved = False
        values = {
            "name": client.name,
            "tier": client.tier.value,
            "monthly_budget_usd": str(client.monthly_budget_usd),
            "active": "yes" if client.active else "no",
        }
        if visit.request.method == "POST":
            values |= {k: visit.form.get(k, "").strip() for k in values}
            try:
                client = await session.clients.update(
                    client.id,
                    name=values["name"],
                    tier=values["tier"],
                    monthly_budget_usd=values["monthly_budget_usd"],
                    active=values["active"] == "yes",
                )
                saved = True
            except _FORM_ERRORS as exc:
                errors, status = field_errors(exc), exc.status
        return await visit.render(
            "staff_client.html",
            status=status,
            client=client,
            users=await session.users.list(client_id=client.id),
            tiers=list(Tier),
            values=values,
            errors=errors,
            saved=saved,
        )

    # -- users -----------------------------------------------------------------------------

    async def users(self, visit: Visit) -> Response:
        """Users (`?client_id=` for one client's); posted, a new one (`users.create`)."""
        staff_only(visit)
        session = visit.session
        wanted = visit.request.query_params.get("client_id", "").strip()
        values = {"email": "", "display_name": "", "role": "client", "client_id": wanted}
        errors: dict[str, str] = {}
        status = 200
        if visit.request.method == "POST":
            values |= {k: visit.form.get(k, "").strip() for k in values}
            try:
                created = await session.users.create(
                    email=values["email"],
                    password=visit.form.get("password", ""),
                    role=values["role"],
                    client_id=values["client_id"] or None,
                    display_name=values["display_name"],
                )
            except _FORM_ERRORS as exc:
                errors, status = field_errors(exc), exc.status
            else:
                return visit.redirect(f"/admin/users/{created.id}")
        clients = await session.clients.list()
        return await visit.render(
            "staff_users.html",
            status=status,
            users=await session.users.list(client_id=wanted or None),
            clients=clients,
            names={c.id: c.name for c in clients},
            roles=list(Role),
            wanted=wanted,
            values=values,
            errors=errors,
        )

    async def user(self, visit: Visit, **shown: Any) -> Response:
        """One user: who, whether active, its API keys, and what staff may do to it."""
        staff_only(visit)
        session = visit.session
        user = await session.users.get(visit.arg("user_id"))
        client = await session.clients.get(user.client_id) if user.client_id else None
        return await visit.render(
            "staff_user.html",
            user=user,
            client=client,
            keys=await session.api_keys.list(user_id=user.id),
            **({"reset": None, "revoked": None} | shown),
        )

    async def user_action(self, visit: Visit) -> Response:
        """Deactivate, reactivate, revoke its sessions or reset its password (the new one is
        shown on the page that answers, once)."""
        staff_only(visit)
        users, user_id = visit.session.users, visit.arg("user_id")
        action = visit.arg("action")
        if action == "deactivate":
            await users.deactivate(user_id)
        elif action == "reactivate":
            await users.reactivate(user_id)
        elif action == "revoke-sessions":
            return await self.user(visit, revoked=await users.revoke_sessions(user_id))
        elif action == "reset-password":
            return await self.user(visit, reset=await users.reset_password(user_id))
        else:
            raise NotFoundError(f"no such action: {action}")
        return visit.redirect(f"/admin/users/{user_id}")

    # -- API keys, audit, workers ----------------------------------------------------------

    async def keys(self, visit: Visit) -> Response:
        """Every user's API keys (never the keys themselves), with revoke."""
        staff_only(visit)
        session = visit.session
        keys = await session.api_keys.list()  # staff naming no user: everyone's
        emails = {u.id: u.email for u in await session.users.list()}
        return await visit.render("staff_keys.html", keys=keys, emails=emails)

    async def audit(self, visit: Visit) -> Response:
        """The audit log (`audit.list`: admins), newest first, filtered by action and by
        how many events."""
        staff_only(visit)
        query = visit.request.query_params
        action = query.get("action", "").strip()
        text = query.get("limit", "100")
        if not text.isdigit() or int(text) not in _AUDIT_LIMITS:
            raise BadInputError(
                f"limit is one of {', '.join(map(str, _AUDIT_LIMITS))}", details={"field": "limit"}
            )
        events = await visit.session.audit.list(action=action or None, limit=int(text))
        return await visit.render(
            "staff_audit.html", events=events, action=action, limit=int(text), limits=_AUDIT_LIMITS
        )

    async def workers(self, visit: Visit) -> Response:
        """The workers as the orchestrator's registry sees them (`executions.workers`)."""
        staff_only(visit)
        return await visit.render(
            "staff_workers.html", workers=await visit.session.executions.workers()
        )

    # -- execution controls ----------------------------------------------------------------

    async def retry(self, visit: Visit) -> Response:
        """Run a failed or cancelled execution again (`executions.retry`), reusing its
        committed stages, and follow it on its request's page."""
        staff_only(visit)
        execution = await visit.session.executions.retry(visit.arg("execution_id"))
        return visit.redirect(f"/admin/requests/{execution.request_id or ''}")

    async def resume(self, visit: Visit) -> Response:
        """Resume an interrupted execution (`executions.resume`), or settle one that ended
        unsettled, and go back to its request's page."""
        staff_only(visit)
        execution = await visit.session.executions.resume(visit.arg("execution_id"))
        return visit.redirect(f"/admin/requests/{execution.request_id or ''}")
