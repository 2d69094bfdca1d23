"""Accounts: client organisations, users and API keys (`session.clients`, `session.users`,
`session.api_keys`)."""

from __future__ import annotations

import builtins
from decimal import Decimal

from ..models import ApiKeyInfo, Client, Role, Tier, User
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


class AsyncUsers(AsyncResource):
    """Users (staff)."""

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
