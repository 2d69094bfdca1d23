"""Accounts: first-run admin, login and sessions, client organisations and users."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any, NoReturn

import attrs

from .._clock import Clock, IdFactory
from .._exceptions import (
    AuthenticationError,
    BadInputError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    SessionExpiredError,
)
from ..api.operations import OPERATIONS
from ..auth import (
    PasswordHasher,
    generate_password,
    hash_token,
    new_api_key,
    new_session_token,
    parse_api_key,
)
from ..models import ApiKeyInfo, Client, LoginThrottle, Principal, Role, Session, Tier, User
from ..state import Store
from ._fields import client_name, money
from ._fields import email as _email
from ._fields import tier as _tier
from ._hashing import OffLoopHashing
from .audit import AuditLog

__all__ = ["AccountService", "LoginResult"]

SESSION_LIFETIME = timedelta(hours=24)
_ACCOUNT_KIND = {
    Role.ADMIN: "an admin account",
    Role.ACCOUNT_MANAGER: "an account manager account",
    Role.CLIENT: "a client account",
}


@attrs.frozen
class _Attempt:
    """One login attempt: the salted digest of the name typed, the client's address (if
    known) and when (seconds since the epoch)."""

    digest: str
    address: str | None
    now: float

    @property
    def account_key(self) -> str:
        return f"login:account:{self.digest}"

    @property
    def keys(self) -> list[str]:
        """The throttle's keys this attempt counts against."""
        return [self.account_key] + ([f"login:address:{self.address}"] if self.address else [])

    def keys_and_allowances(self, throttle: LoginThrottle) -> list[tuple[str, int]]:
        """Each key with the failures it may have for free."""
        free = [throttle.account_failures, throttle.address_failures]
        return list(zip(self.keys, free, strict=False))


@attrs.frozen
class LoginResult:
    """A successful login: the session token (shown once), the user and its context."""

    session_token: str
    user: User
    expires_at: Any
    kam_context: dict[str, Any]


class AccountService:
    """Clients, users and sessions. Every method taking a `Principal` checks what it may do."""

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        clock: Clock,
        ids: IdFactory,
        hasher: PasswordHasher,
        session_lifetime: timedelta = SESSION_LIFETIME,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self.ids = ids
        self.hasher = hasher
        self.session_lifetime = session_lifetime
        self.throttle = throttle or LoginThrottle()
        self._hashing = OffLoopHashing(hasher)

    # -- first run, login, sessions ---------------------------------------------------------

    async def bootstrap_admin(self, email: str, password: str | None = None) -> str:
        """Create the first admin; returns its password (generated when not given).

        Raises `ConflictError` once an admin exists, `BadInputError` for a bad email or a
        password shorter than 12 characters.
        """
        address = _email(email)
        secret = password if password is not None else generate_password()
        password_hash = await self._hashing.hash(secret)
        async with self.store.transaction() as tx:
            if await tx.count_admins():
                raise ConflictError("an admin already exists; log in as that admin instead")
            user = User(self.ids.new("usr"), address, Role.ADMIN, None, self.clock.now())
            await tx.add_user(user, password_hash)
            await self.audit.within(tx).record(
                "system", "admin.bootstrap", f"user:{user.id}", email=address
            )
        return secret

    async def issue_local_account_manager(
        self, email: str, display_name: str = ""
    ) -> tuple[str, bool]:
        """An account manager for a program that holds the state database itself, such as
        `aifactory demo` on an existing home: created, or if it exists given a new password.
        Returns the generated password (shown to no one else) and whether it was created.

        No operation reaches this, so no remote caller can: whoever can call it could write
        the state database directly anyway. It needs no admin, and takes nobody's place:
        `bootstrap_admin` still works after it. Raises `BadInputError` for a bad email and
        `ConflictError` if the email belongs to a user who is not an active account manager.
        """
        address = _email(email)
        secret = generate_password()
        password_hash = await self._hashing.hash(secret)
        async with self.store.transaction() as tx:
            found = await tx.find_user(address)
            if found is None:
                user = User(
                    self.ids.new("usr"),
                    address,
                    Role.ACCOUNT_MANAGER,
                    None,
                    self.clock.now(),
                    str(display_name)[:200],
                )
                await tx.add_user(user, password_hash)
                action = "user.create"
            else:
                user = found[0]
                if user.role is not Role.ACCOUNT_MANAGER or not user.active:
                    raise ConflictError(
                        f"{address} is taken by another kind of user", details={"email": address}
                    )
                await tx.set_password_hash(user.id, password_hash)
                action = "user.password_reset"
            await self.audit.within(tx).record(
                "system", action, f"user:{user.id}", email=address, role=user.role.value
            )
        return secret, found is None

    async def login(
        self,
        username: str,
        password: str,
        login_type: str = "client",
        client_address: str | None = None,
    ) -> LoginResult:
        """Check credentials and open a 24-hour session.

        `login_type` is `client` (client users) or `admin` (admins and account managers).
        Raises `AuthenticationError`: with one message for an unknown user, a wrong password
        and a disabled user, so that a failed login never tells whether an email has an
        account; and, only once the password is right, with the login type that fits the
        account. Raises `BadInputError` for a login type other than those two.

        Failed logins are throttled per account and per `client_address` (the HTTP server
        gives it) by the `LoginThrottle`: while either is locked, every login for it is
        refused with `QuotaExceededError` (429, `retry_after_s` in its details) without
        looking at the password, the right one too. Passwords are checked off the event
        loop, a few at a time (`OffLoopHashing`).
        """
        if login_type not in ("client", "admin"):
            raise BadInputError("loginType is 'client' or 'admin'", details={"field": "loginType"})
        name = str(username).strip().lower()
        attempt = await self._attempt(name, client_address)
        await self._check_lock(attempt)
        found = await self.store.find_user(name)
        if found is None:
            await self._hashing.burn(password)
            return await self._refuse(attempt, "unknown user")
        user, stored_hash = found
        if not await self._hashing.verify(stored_hash, password):
            return await self._refuse(attempt, "wrong password", user)
        if not user.active:
            return await self._refuse(attempt, "user disabled", user)
        if not await self._client_active(user):
            return await self._refuse(attempt, "client disabled", user)
        if (login_type == "admin") != user.role.is_staff:
            # The password is right: whoever typed it may learn which door to use.
            fits = "admin" if user.role.is_staff else "client"
            return await self._refuse(
                attempt,
                f"not a {login_type} account",
                user,
                message=f"this is {_ACCOUNT_KIND[user.role]}: log in with login type '{fits}'",
            )
        if self.throttle.enabled:
            await self.store.forget_login_failures(attempt.account_key)
        if self.hasher.needs_rehash(stored_hash):
            await self.store.set_password_hash(user.id, await self._hashing.hash(password))
        token = new_session_token()
        now = self.clock.now()
        session = Session(hash_token(token), user.id, now, now + self.session_lifetime)
        await self.store.add_session(session)
        await self.audit.record(
            f"user:{user.id}", "auth.login", f"user:{user.id}", login_type=login_type
        )
        return LoginResult(token, user, session.expires_at, await self.context(user))

    async def _attempt(self, name: str, client_address: str | None) -> _Attempt:
        salt = await self.store.salt("login", secrets.token_hex(16))
        digest = hmac.new(salt.encode(), name.encode(), hashlib.sha256).hexdigest()[:32]
        address = None if client_address is None else str(client_address)[:100]
        return _Attempt(digest, address, self.clock.now().timestamp())

    async def _check_lock(self, attempt: _Attempt) -> None:
        """Refuse the attempt, unheard, while its account or its address is locked."""
        if not self.throttle.enabled:
            return
        waits = [
            wait
            for key in attempt.keys
            if (wait := (await self.store.login_failures(key)).wait(attempt.now)) is not None
        ]
        if not waits:
            return
        wait = max(waits)
        # Who the name belongs to is not looked up: a locked attempt learns nothing.
        await self.audit.record(
            "anonymous",
            "auth.login",
            f"name_digest:{attempt.digest}",
            "denied",
            reason="throttled",
            client_address=attempt.address,
            retry_after_s=round(wait, 3),
        )
        raise QuotaExceededError(
            f"too many failed logins; try again in {math.ceil(wait)} s",
            details={"reason": "login_throttled", "retry_after_s": round(wait, 3)},
        )

    async def _refuse(
        self,
        attempt: _Attempt,
        reason: str,
        user: User | None = None,
        *,
        message: str = "invalid username or password",
    ) -> NoReturn:
        # A name that is no account's may be anything typed there, a password included:
        # the audit log keeps only its salted digest.
        actor = f"user:{user.id}" if user else "anonymous"
        target = f"email:{user.email}" if user else f"name_digest:{attempt.digest}"
        locked: dict[str, float] = {}
        if self.throttle.enabled:
            for key, free in attempt.keys_and_allowances(self.throttle):
                after = await self.store.note_login_failure(key, free, self.throttle, attempt.now)
                wait = after.wait(attempt.now)
                if wait is not None:
                    locked[key.split(":")[1]] = round(wait, 3)
        details: dict[str, Any] = {"reason": reason, "client_address": attempt.address}
        if locked:
            details["locked_s"] = locked  # this failure locked the account or the address
        await self.audit.record(actor, "auth.login", target, "denied", **details)
        raise AuthenticationError(message)

    async def authenticate(self, token: str | None) -> Principal:
        """The principal behind a session token.

        Raises `AuthenticationError` for a missing, unknown or revoked token and when its
        user (or the user's client) is deactivated, and `SessionExpiredError` for an expired
        one.
        """
        if not token:
            raise AuthenticationError("a session token is required")
        session = await self.store.get_session(hash_token(token))
        if session is None or session.revoked_at is not None:
            raise AuthenticationError("invalid or revoked session")
        if self.clock.now() >= session.expires_at:
            raise SessionExpiredError("the session has expired; log in again")
        user = await self.store.get_user(session.user_id)
        if not user.active or not await self._client_active(user):
            raise AuthenticationError("invalid or revoked session")
        return Principal(user, session.token_hash)

    async def authenticate_api_key(self, key: str | None) -> Principal:
        """The principal behind an external API key (`X-API-Key`).

        Raises `AuthenticationError` for a missing, malformed, unknown or revoked key (one
        message for all) and when its user (or the user's client) is deactivated.
        """
        prefix = parse_api_key(key or "")
        found = await self.store.find_api_key(prefix) if prefix else None
        if (
            found is None
            or found[0].revoked_at is not None
            or not hmac.compare_digest(found[1], hash_token(key or ""))
        ):
            raise AuthenticationError("invalid or revoked API key")
        user = await self.store.get_user(found[0].user_id)
        if not user.active or not await self._client_active(user):
            raise AuthenticationError("invalid or revoked API key")
        return Principal(user)

    async def _client_active(self, user: User) -> bool:
        """Whether the user's client (if it has one) is active: a deactivated client's users
        are refused as their own deactivation would refuse them."""
        return user.client_id is None or (await self.store.get_client(user.client_id)).active

    async def create_api_key(
        self, principal: Principal, name: str = "", user_id: str | None = None
    ) -> ApiKeyInfo:
        """A new API key bound to a user (by default the caller), its client and role.

        The key is in the reply only this once; it is stored as a hash. Client users make
        keys for themselves only. Raises `PermissionDeniedError`, `NotFoundError`.
        """
        owner = principal.user if user_id is None else await self.store.get_user(user_id)
        if owner.id != principal.user.id and not principal.role.is_staff:
            raise PermissionDeniedError("client users create API keys for themselves only")
        if owner.role.is_staff and principal.role is not Role.ADMIN:
            raise PermissionDeniedError("only admins create API keys for staff users")
        key, prefix = new_api_key()
        info = ApiKeyInfo(
            self.ids.new("key"),
            prefix,
            owner.id,
            owner.client_id,
            owner.role,
            self.clock.now(),
            name=str(name)[:100],
        )
        async with self.store.transaction() as tx:
            await tx.add_api_key(info, hash_token(key))
            await self.audit.within(tx).record(
                principal.actor, "api_key.create", f"api_key:{info.id}", owner=owner.id
            )
        return attrs.evolve(info, key=key)

    async def list_api_keys(
        self, principal: Principal, user_id: str | None = None
    ) -> list[ApiKeyInfo]:
        """API keys (never the keys themselves): the caller's own; staff may name a user."""
        if not principal.role.is_staff:
            user_id = principal.user.id
        return await self.store.list_api_keys(user_id)

    async def revoke_api_key(self, principal: Principal, key_id: str) -> ApiKeyInfo:
        """Revoke a key: client users only their own; account managers no admin's or other
        account manager's (`Principal.manages`). Raises `NotFoundError`,
        `PermissionDeniedError`."""
        mine = {k.id for k in await self.store.list_api_keys(principal.user.id)}
        if key_id not in mine:
            if not principal.role.is_staff:
                raise NotFoundError(f"no API key {key_id!r}", details={"id": key_id})
            owner = (await self.store.get_api_key(key_id)).user_id
            if not principal.manages(await self.store.get_user(owner)):
                await self.audit.record(
                    principal.actor, "api_key.revoke", f"api_key:{key_id}", "denied"
                )
                raise PermissionDeniedError(
                    "only admins revoke the API keys of admins and account managers",
                    details={"id": key_id},
                )
        info = await self.store.revoke_api_key(key_id, self.clock.now())
        await self.audit.record(principal.actor, "api_key.revoke", f"api_key:{key_id}")
        return info

    async def logout(self, principal: Principal, token: str) -> None:
        """Revoke the session `token` (idempotent)."""
        await self.store.revoke_session(hash_token(token), self.clock.now())
        await self.audit.record(principal.actor, "auth.logout", principal.actor)

    async def me(self, principal: Principal) -> dict[str, Any]:
        """The caller and its context (as the login reply gives them)."""
        return {"user": principal.user, "kamContext": await self.context(principal.user)}

    async def context(self, user: User) -> dict[str, Any]:
        """What the user may do and for which client (the login reply's `kamContext`)."""
        ctx: dict[str, Any] = {
            "role": user.role.value,
            "client_id": user.client_id,
            "permissions": [op.name for op in OPERATIONS if op.allows(user.role)],
        }
        if user.client_id is not None:
            client = await self.store.get_client(user.client_id)
            ctx |= {"client_name": client.name, "tier": client.tier.value}
        return ctx

    # -- clients and users ----------------------------------------------------------------

    async def create_client(
        self,
        principal: Principal,
        name: str,
        tier: Tier | str,
        monthly_budget_usd: Decimal | float | int | str,
    ) -> Client:
        """Create a client organisation. Raises `BadInputError`, `ConflictError` (name taken)."""
        clean, level = client_name(name), _tier(tier)
        now = self.clock.now()
        client = Client(
            self.ids.new("cli"),
            clean,
            level,
            money(monthly_budget_usd, "monthly_budget_usd"),
            Decimal(0),
            now.strftime("%Y-%m"),
            now,
        )
        async with self.store.transaction() as tx:
            await tx.add_client(client)
            await self.audit.within(tx).record(
                principal.actor,
                "client.create",
                f"client:{client.id}",
                name=clean,
                tier=level.value,
                monthly_budget_usd=str(client.monthly_budget_usd),
            )
        return client

    async def get_client(self, principal: Principal, client_id: str) -> Client:
        """One client; client users may see only their own. Raises `NotFoundError`."""
        if not principal.role.is_staff and principal.client_id != client_id:
            raise NotFoundError(f"no client {client_id!r}", details={"id": client_id})
        return await self.store.get_client(client_id)

    async def list_clients(self, principal: Principal) -> list[Client]:
        """Every client organisation."""
        return await self.store.list_clients()

    async def create_user(
        self,
        principal: Principal,
        email: str,
        password: str,
        role: Role | str = Role.CLIENT,
        client_id: str | None = None,
        display_name: str = "",
    ) -> User:
        """Create a user. Client users need a `client_id`; staff users must not have one.

        Only admins create staff users. Raises `BadInputError`, `PermissionDeniedError`,
        `NotFoundError` (no such client), `QuotaExceededError` (the tier's user limit),
        `ConflictError` (email taken).
        """
        try:
            user_role = Role(role)
        except ValueError:
            raise BadInputError(f"unknown role {role!r}", details={"field": "role"}) from None
        if user_role.is_staff and principal.role is not Role.ADMIN:
            raise PermissionDeniedError("only admins create admin or account manager users")
        if user_role.is_staff == (client_id is not None):
            raise BadInputError(
                "client users need a client_id; admins and account managers have none",
                details={"field": "client_id"},
            )
        password_hash = await self._hashing.hash(password)
        user = User(
            self.ids.new("usr"),
            _email(email),
            user_role,
            client_id,
            self.clock.now(),
            str(display_name)[:200],
        )
        async with self.store.transaction() as tx:
            if client_id is not None:
                limit = (await tx.get_client(client_id)).limits.max_users
                if limit is not None and len(await tx.list_users(client_id)) >= limit:
                    raise QuotaExceededError(
                        f"the client's tier allows {limit} users", details={"max_users": limit}
                    )
            await tx.add_user(user, password_hash)
            await self.audit.within(tx).record(
                principal.actor,
                "user.create",
                f"user:{user.id}",
                email=user.email,
                role=user_role.value,
                client_id=client_id,
            )
        return user

    async def list_users(self, principal: Principal, client_id: str | None = None) -> list[User]:
        """Users, optionally of one client."""
        return await self.store.list_users(client_id)
