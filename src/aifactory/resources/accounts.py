"""Accounts: client organisations, users and API keys (`session.clients`, `session.users`,
`session.api_keys`)."""

from __future__ import annotations

import builtins
from decimal import Decimal

from ..models import ApiKeyInfo, Client, PasswordReset, Role, Tier, UsageReport, User
from ._base import AsyncResource

__all__ = ["AsyncApiKeys", "AsyncClients", "AsyncUsers"]


class AsyncClients(AsyncResource):
    """Client organisations (staff)."""

    async def create(
        self, name: str, tier: Tier | str, monthly_budget_usd: Decimal | float | int | str
    ) -> Client:
        """Create a client organisation with a tier and a monthly budget in USD."""
        return await self._call(
            "clients.create", name=name, tier=tier, monthly_budget_usd=monthly_budget_usd
        )

    async def list(self) -> builtins.list[Client]:
        """Every client organisation."""
        return await self._call("clients.list")

    async def get(self, client_id: str) -> Client:
        """One client (client users: only their own)."""
        return await self._call("clients.get", client_id=client_id)

    async def update(
        self,
        client_id: str,
        name: str | None = None,
        tier: Tier | str | None = None,
        monthly_budget_usd: Decimal | float | int | str | None = None,
        active: bool | None = None,
    ) -> Client:
        """Change a client's name, tier, monthly budget (USD) or whether it is active (an
        inactive client's users are refused); what is not given stays."""
        return await self._call(
            "clients.update",
            client_id=client_id,
            name=name,
            tier=tier,
            monthly_budget_usd=monthly_budget_usd,
            active=active,
        )

    async def usage(self, client_id: str, month: str | None = None) -> UsageReport:
        """What a client used in `month` (`YYYY-MM`, UTC; default this month): executions,
        model calls, tokens and costs, by template and by worker (client users: only their
        own client)."""
        return await self._call("clients.usage", client_id=client_id, month=month)

    async def usage_csv(self, client_id: str, month: str | None = None) -> bytes:
        """`usage` as CSV (UTF-8), a row per line of the report."""
        return await self._call("clients.usage_csv", client_id=client_id, month=month)


class AsyncUsers(AsyncResource):
    """Users (staff; account managers manage client users only)."""

    async def create(
        self,
        email: str,
        password: str,
        role: Role | str = Role.CLIENT,
        client_id: str | None = None,
        display_name: str = "",
    ) -> User:
        """Create a user; client users belong to `client_id`."""
        return await self._call(
            "users.create",
            email=email,
            password=password,
            role=role,
            client_id=client_id,
            display_name=display_name,
        )

    async def list(self, client_id: str | None = None) -> builtins.list[User]:
        """Users, optionally of one client."""
        return await self._call("users.list", client_id=client_id)

    async def get(self, user_id: str) -> User:
        """One user."""
        return await self._call("users.get", user_id=user_id)

    async def update(
        self, user_id: str, email: str | None = None, display_name: str | None = None
    ) -> User:
        """Change a user's email (its login) or display name; what is not given stays."""
        return await self._call(
            "users.update", user_id=user_id, email=email, display_name=display_name
        )

    async def deactivate(self, user_id: str) -> User:
        """Deactivate a user: no more logins, its sessions revoked and its API keys refused,
        at once."""
        return await self._call("users.deactivate", user_id=user_id)

    async def reactivate(self, user_id: str) -> User:
        """Let a deactivated user log in again (its API keys work again)."""
        return await self._call("users.reactivate", user_id=user_id)

    async def reset_password(self, user_id: str) -> PasswordReset:
        """Give a user a generated password (its `password` is shown only in this reply) and
        revoke its sessions."""
        return await self._call("users.reset_password", user_id=user_id)

    async def revoke_sessions(self, user_id: str) -> int:
        """Revoke every session of a user; returns how many."""
        return await self._call("users.revoke_sessions", user_id=user_id)


class AsyncApiKeys(AsyncResource):
    """API keys for external clients (`X-API-Key`)."""

    async def create(self, name: str = "", user_id: str | None = None) -> ApiKeyInfo:
        """A new key for you (staff: for `user_id`); its `key` is shown only in this reply."""
        return await self._call("api_keys.create", name=name, user_id=user_id)

    async def list(self, user_id: str | None = None) -> builtins.list[ApiKeyInfo]:
        """Keys (never the keys themselves): yours; staff may name a user."""
        return await self._call("api_keys.list", user_id=user_id)

    async def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key at once."""
        return await self._call("api_keys.revoke", key_id=key_id)
