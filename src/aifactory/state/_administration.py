"""Account administration's records: changing clients and users, ending a user's sessions
(synchronous, see `_sql`).

Changes write only the columns they change, so that what other transactions keep in the same
row meanwhile (a client's usage this month, charged as executions settle) is never undone.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from .._exceptions import ConflictError, NotFoundError
from ..models import ApiKeyInfo, Client, Role, Tier, User
from . import _tables as t
from ._accounts import AccountRecords, _client_taken, _email_taken

__all__ = ["AdministrationRecords"]

T = TypeVar("T")


class AdministrationRecords(AccountRecords):
    """Changes to clients and users, the end of a user's sessions, API keys by id."""

    def change_client(
        self,
        client_id: str,
        name: str | None = None,
        tier: Tier | None = None,
        monthly_budget_usd: Decimal | None = None,
        active: bool | None = None,
    ) -> tuple[Client, Client]:
        """Change the given fields of a client (`None`: unchanged) under its row lock, the
        lock budget checks and charges take. Returns the client before and after.

        Raises `NotFoundError`, and `ConflictError` if another client has the name (in any
        case).
        """
        with self.transaction():
            before = self._locked_client(client_id)
            if (
                name is not None
                and self._execute(
                    "SELECT id FROM clients WHERE lower(name) = lower(?) AND id <> ?",
                    (name, client_id),
                ).fetchone()
            ):
                raise _client_taken(name)
            changes = _given(
                name=name, tier=tier, monthly_budget_usd=monthly_budget_usd, active=active
            )
            return before, self._change(t.CLIENTS, before, client_id, changes)

    def change_user(
        self,
        user_id: str,
        email: str | None = None,
        display_name: str | None = None,
        active: bool | None = None,
    ) -> tuple[User, User]:
        """Change the given fields of a user (`None`: unchanged); returns it before and after.

        Raises `NotFoundError`; `ConflictError` if another user has the email (in any case),
        or if it would deactivate the last active admin. The active admins are locked first,
        so two admins deactivating each other at once cannot both succeed.
        """
        with self.transaction():
            if active is False:
                lock = " ORDER BY id FOR UPDATE" if self.dialect == "postgresql" else ""
                admins = self._execute(
                    f"SELECT id FROM users WHERE role = ? AND active = ?{lock}",  # noqa: S608
                    (Role.ADMIN.value, True),
                ).fetchall()
                if [row[0] for row in admins] == [user_id]:
                    raise ConflictError(
                        "the last active admin cannot be deactivated: make another admin first",
                        details={"id": user_id},
                    )
            before = self.get_user(user_id)
            if (
                email is not None
                and self._execute(
                    "SELECT id FROM users WHERE lower(email) = lower(?) AND id <> ?",
                    (email, user_id),
                ).fetchone()
            ):
                raise _email_taken(email)
            changes = _given(email=email, display_name=display_name, active=active)
            return before, self._change(t.USERS, before, user_id, changes)

    def revoke_user_sessions(
        self, user_id: str, at: datetime, except_token_hash: str | None = None
    ) -> int:
        """Revoke every live session of a user, but the one stored under `except_token_hash`
        if given; returns how many were revoked."""
        sql = (
            "UPDATE sessions SET revoked_at = ? "
            "WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?"
        )
        params: tuple[Any, ...] = (at.isoformat(), user_id, at.isoformat())
        if except_token_hash is not None:
            sql += " AND token_hash <> ?"
            params += (except_token_hash,)
        return self._execute(sql, params).rowcount

    def get_api_key(self, key_id: str) -> ApiKeyInfo:
        """The record of API key `key_id`. Raises `NotFoundError`."""
        row = self._execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no API key {key_id!r}", details={"id": key_id})
        return self._api_key(row)

    def _change(self, table: t.Table[T], before: T, ident: str, changes: dict[str, Any]) -> T:
        """`before` with `changes`, written: only the changed columns."""
        after = attrs.evolve(before, **changes)  # type: ignore[misc]
        if changes:
            row = table.to_row(after)
            self._update_columns(table, {"id": ident} | {k: row[k] for k in changes})
        return after


def _given(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}
