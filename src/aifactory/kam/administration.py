"""Account administration: changing clients and users once they exist, deactivating users,
resetting and changing passwords, ending a user's sessions.

Who may do what is decided twice. The operation table lets staff (admins and account
managers) call the administration operations and everyone change their own password; then
each method checks the user it acts on (`Principal.manages`): admins manage anyone, account
managers client users and themselves, never an admin or another account manager.

Every change is audited, with its actor and each changed field before and after; passwords,
their hashes and session tokens never are (nor do they reach errors or logs).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

import attrs

from .._clock import Clock
from .._exceptions import (
    AuthenticationError,
    BadInputError,
    NotFoundError,
    PermissionDeniedError,
)
from ..auth import PasswordHasher, generate_password
from ..models import Client, PasswordReset, Principal, Tier, User
from ..state import Store
from . import _fields
from ._hashing import OffLoopHashing
from .audit import AuditLog

__all__ = ["AdministrationService"]


def _plain(value: Any) -> Any:
    """A field's value as the audit log keeps it."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    return value


def _changes(before: Any, after: Any) -> dict[str, dict[str, Any]]:
    """The fields that differ between two versions of a value, each as before and after."""
    return {
        field.name: {"before": _plain(old), "after": _plain(new)}
        for field in attrs.fields(type(before))
        if (old := getattr(before, field.name)) != (new := getattr(after, field.name))
    }


def _given(fields: Mapping[str, Any]) -> dict[str, Any]:
    given = {name: value for name, value in fields.items() if value is not None}
    if not given:
        raise BadInputError(
            f"nothing to change: give at least one of {', '.join(fields)}",
            details={"fields": list(fields)},
        )
    return given


class AdministrationService:
    """Changes to clients and users after they were made, and what keeps accounts usable:
    deactivation, password resets and changes, the end of sessions."""

    def __init__(self, store: Store, audit: AuditLog, clock: Clock, hasher: PasswordHasher) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self.hasher = hasher
        self._hashing = OffLoopHashing(hasher)

    async def _managed(self, principal: Principal, user_id: str, action: str) -> User:
        """The user `user_id`, if the caller may manage it; a refusal is audited.

        Raises `NotFoundError`, `PermissionDeniedError`."""
        user = await self.store.get_user(user_id)
        if not principal.manages(user):
            await self.audit.record(principal.actor, action, f"user:{user_id}", "denied")
            raise PermissionDeniedError(
                f"only admins manage {user.role.value.replace('_', ' ')} users",
                details={"id": user_id},
            )
        return user

    # -- clients ---------------------------------------------------------------------------

    async def update_client(
        self,
        principal: Principal,
        client_id: str,
        name: str | None = None,
        tier: Tier | str | None = None,
        monthly_budget_usd: Decimal | float | int | str | None = None,
        active: bool | None = None,
    ) -> Client:
        """Change a client's name, tier, monthly budget (USD) or whether it is active; what
        is not given stays. The client's usage this month is kept, and its users are refused
        (login, sessions, API keys) while it is inactive.

        Raises `BadInputError` (the checks of `clients.create`, or nothing to change),
        `NotFoundError`, `ConflictError` (the name is taken).
        """
        given = _given(
            {
                "name": name,
                "tier": tier,
                "monthly_budget_usd": monthly_budget_usd,
                "active": active,
            }
        )
        async with self.store.transaction() as tx:
            before, after = await tx.change_client(
                client_id,
                name=_fields.client_name(name) if name is not None else None,
                tier=_fields.tier(tier) if tier is not None else None,
                monthly_budget_usd=(
                    _fields.money(monthly_budget_usd, "monthly_budget_usd")
                    if monthly_budget_usd is not None
                    else None
                ),
                active=active,
            )
            await self.audit.within(tx).record(
                principal.actor,
                "client.update",
                f"client:{client_id}",
                fields=sorted(given),
                changes=_changes(before, after),
            )
        return after

    # -- users -----------------------------------------------------------------------------

    async def get_user(self, principal: Principal, user_id: str) -> User:
        """One user. Raises `NotFoundError`."""
        return await self.store.get_user(user_id)

    async def update_user(
        self,
        principal: Principal,
        user_id: str,
        email: str | None = None,
        display_name: str | None = None,
    ) -> User:
        """Change a user's email (its login) or display name; what is not given stays.

        Raises `BadInputError`, `NotFoundError`, `PermissionDeniedError` (an account manager
        and an admin's or another account manager's user), `ConflictError` (email taken).
        """
        given = _given({"email": email, "display_name": display_name})
        await self._managed(principal, user_id, "user.update")
        async with self.store.transaction() as tx:
            before, after = await tx.change_user(
                user_id,
                email=_fields.email(email) if email is not None else None,
                display_name=_fields.display_name(display_name)
                if display_name is not None
                else None,
            )
            await self.audit.within(tx).record(
                principal.actor,
                "user.update",
                f"user:{user_id}",
                fields=sorted(given),
                changes=_changes(before, after),
            )
        return after

    async def deactivate_user(self, principal: Principal, user_id: str) -> User:
        """Deactivate a user at once: it can no longer log in, its sessions are revoked and
        its API keys refused (until it is reactivated).

        Raises `NotFoundError`, `PermissionDeniedError`, `ConflictError` (the last active
        admin).
        """
        return await self._set_active(principal, user_id, active=False)

    async def reactivate_user(self, principal: Principal, user_id: str) -> User:
        """Let a deactivated user log in again (its API keys work again; its old sessions
        stay revoked). Raises `NotFoundError`, `PermissionDeniedError`."""
        return await self._set_active(principal, user_id, active=True)

    async def _set_active(self, principal: Principal, user_id: str, *, active: bool) -> User:
        action = "user.reactivate" if active else "user.deactivate"
        await self._managed(principal, user_id, action)
        async with self.store.transaction() as tx:
            before, after = await tx.change_user(user_id, active=active)
            revoked = 0 if active else await tx.revoke_user_sessions(user_id, self.clock.now())
            await self.audit.within(tx).record(
                principal.actor,
                action,
                f"user:{user_id}",
                changes=_changes(before, after),
                sessions_revoked=revoked,
            )
        return after

    # -- passwords and sessions ------------------------------------------------------------

    async def reset_password(self, principal: Principal, user_id: str) -> PasswordReset:
        """Give a user a new generated password, shown only in this reply, and revoke its
        sessions (its API keys stay). Raises `NotFoundError`, `PermissionDeniedError`."""
        user = await self._managed(principal, user_id, "user.password_reset")
        return await self._reset(user, principal.actor)

    async def reset_password_locally(self, email: str) -> PasswordReset:
        """`reset_password` for whoever holds the state database itself (`aifactory admin
        reset-password`): no operation reaches this, and the audit log names the actor
        `system`. Raises `BadInputError`, `NotFoundError` (no user with that email)."""
        address = _fields.email(email)
        found = await self.store.find_user(address)
        if found is None:
            raise NotFoundError(f"no user with email {address}", details={"email": address})
        return await self._reset(found[0], "system", via="cli")

    async def _reset(self, user: User, actor: str, **how: str) -> PasswordReset:
        password = generate_password()
        password_hash = await self._hashing.hash(password)
        async with self.store.transaction() as tx:
            await tx.set_password_hash(user.id, password_hash)
            revoked = await tx.revoke_user_sessions(user.id, self.clock.now())
            await self.audit.within(tx).record(
                actor, "user.password_reset", f"user:{user.id}", sessions_revoked=revoked, **how
            )
        return PasswordReset(user, password, revoked)

    async def revoke_sessions(self, principal: Principal, user_id: str) -> int:
        """Revoke every session of a user (yours too, if you name yourself; `auth.logout`
        ends just this one); returns how many. Its API keys stay. Raises `NotFoundError`,
        `PermissionDeniedError`."""
        await self._managed(principal, user_id, "user.revoke_sessions")
        async with self.store.transaction() as tx:
            revoked = await tx.revoke_user_sessions(user_id, self.clock.now())
            await self.audit.within(tx).record(
                principal.actor,
                "user.revoke_sessions",
                f"user:{user_id}",
                sessions_revoked=revoked,
            )
        return revoked

    async def change_password(
        self, principal: Principal, old_password: str, new_password: str
    ) -> None:
        """Change your own password: the current one is required, the new one is checked as
        at creation (12 to 1024 characters), and every other session of yours is revoked;
        the one making the call stays.

        Raises `AuthenticationError` (the current password is wrong), `BadInputError`.
        """
        user = principal.user
        found = await self.store.find_user(user.email)
        if found is None or not await self._hashing.verify(found[1], old_password):
            await self.audit.record(
                principal.actor, "auth.change_password", principal.actor, "denied"
            )
            raise AuthenticationError("the current password is wrong")
        if new_password == old_password:
            raise BadInputError(
                "the new password is the current one", details={"field": "new_password"}
            )
        try:
            password_hash = await self._hashing.hash(new_password)
        except BadInputError as exc:
            raise BadInputError(exc.message, details={"field": "new_password"}) from None
        async with self.store.transaction() as tx:
            await tx.set_password_hash(user.id, password_hash)
            revoked = await tx.revoke_user_sessions(
                user.id, self.clock.now(), except_token_hash=principal.token_hash
            )
            await self.audit.within(tx).record(
                principal.actor,
                "auth.change_password",
                principal.actor,
                sessions_revoked=revoked,
            )
