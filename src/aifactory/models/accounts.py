"""Clients, users and sessions, and the limits of each tier."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import attrs

from ._display import decimal_repr, enum_repr, iso_repr, secret_repr, short_digest_repr
from .enums import Role, Tier

__all__ = [
    "TIER_LIMITS",
    "ApiKeyInfo",
    "Client",
    "PasswordReset",
    "Principal",
    "Session",
    "TierLimits",
    "User",
    "refill_bucket",
]


@attrs.frozen
class TierLimits:
    """What a tier allows; `None` means unlimited."""

    monthly_requests: int | None
    max_users: int | None
    rate_limit_per_minute: int
    concurrent_executions: int | None


TIER_LIMITS: dict[Tier, TierLimits] = {
    Tier.BASIC: TierLimits(100, 2, 10, 1),
    Tier.STANDARD: TierLimits(500, 5, 30, 3),
    Tier.PREMIUM: TierLimits(2000, 20, 60, 10),
    Tier.ENTERPRISE: TierLimits(None, None, 120, None),
}


@attrs.frozen
class Client:
    """A client organisation: its tier and monthly budget (USD).

    `used_this_month_usd` is what executions have been charged since `month` began
    (`YYYY-MM`); a new month starts from zero.
    """

    id: str
    name: str
    tier: Tier = attrs.field(repr=enum_repr)
    monthly_budget_usd: Decimal = attrs.field(repr=decimal_repr)
    used_this_month_usd: Decimal = attrs.field(repr=decimal_repr)
    month: str
    created_at: datetime = attrs.field(repr=iso_repr)
    active: bool = True

    def used_in(self, month: str) -> Decimal:
        """What was charged in `month` (`YYYY-MM`): nothing yet if a new month has begun."""
        return self.used_this_month_usd if self.month == month else Decimal(0)

    @property
    def remaining_budget_usd(self) -> Decimal:
        """Budget left this month (never negative)."""
        return max(Decimal(0), self.monthly_budget_usd - self.used_this_month_usd)

    @property
    def limits(self) -> TierLimits:
        """The limits of this client's tier."""
        return TIER_LIMITS[self.tier]


@attrs.frozen
class User:
    """A person who logs in. Client users belong to exactly one client; staff to none.

    The password hash is never part of this value; only the state store sees it.
    """

    id: str
    email: str
    role: Role = attrs.field(repr=enum_repr)
    client_id: str | None
    created_at: datetime = attrs.field(repr=iso_repr)
    display_name: str = ""
    active: bool = True


@attrs.frozen
class Session:
    """A login session. Only the sha256 of its token is ever stored (and shown shortened: it
    is what looks the session up)."""

    token_hash: str = attrs.field(repr=short_digest_repr)
    user_id: str
    created_at: datetime = attrs.field(repr=iso_repr)
    expires_at: datetime = attrs.field(repr=iso_repr)
    revoked_at: datetime | None = attrs.field(default=None, repr=iso_repr)


@attrs.frozen
class Principal:
    """Who is calling: the authenticated user behind a session (or key).

    `token_hash` names the session the call came with (`None` for an API key), so that an
    operation can spare it, as a password change spares the session that made it.
    """

    user: User
    token_hash: str | None = attrs.field(default=None, repr=False)

    @property
    def role(self) -> Role:
        """The caller's role."""
        return self.user.role

    @property
    def client_id(self) -> str | None:
        """The caller's client organisation, for client users."""
        return self.user.client_id

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        return f"user:{self.user.id}"

    def manages(self, user: User) -> bool:
        """Whether the caller may administer `user` (change it, deactivate it, reset its
        password, end its sessions, revoke its API keys): admins anyone; account managers
        client users and themselves, never an admin or another account manager; client
        users only themselves."""
        if self.role is Role.ADMIN or user.id == self.user.id:
            return True
        return self.role is Role.ACCOUNT_MANAGER and not user.role.is_staff


@attrs.frozen
class ApiKeyInfo:
    """An API key's record (never the key itself): its id, lookup prefix and owner.

    `key` is filled only in the reply that creates it: shown once, stored only as a hash.
    Read it as `.key`; `repr` and `str` show only whether it is there (`key='<hidden>'`).
    """

    id: str
    prefix: str
    user_id: str
    client_id: str | None
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None
    name: str = ""
    key: str | None = attrs.field(default=None, repr=secret_repr)


@attrs.frozen
class PasswordReset:
    """A reset password: the user, its new generated password and how many of its sessions
    were ended. The password is in this reply only (it is stored as a hash); read it as
    `.password`; `repr` and `str` show only that there is one (`password='<hidden>'`)."""

    user: User
    password: str = attrs.field(repr=secret_repr)
    sessions_revoked: int = 0


def refill_bucket(
    tokens: float, at: float, now: float, per_minute: int
) -> tuple[float, float | None]:
    """A rate-limit token bucket (up to a minute's allowance, refilling continuously) of
    `tokens` as of `at` (seconds), refilled until `now` and asked for one request: the
    tokens it has left, and `None` if the request may go, else the seconds until it may."""
    rate = per_minute / 60.0
    tokens = min(float(per_minute), tokens + max(0.0, now - at) * rate)
    if tokens < 1.0:
        return tokens, (1.0 - tokens) / rate
    return tokens - 1.0, None
