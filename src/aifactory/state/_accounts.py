"""The account side's records: clients, users, sessions, API keys, requests, deliverables,
notifications, charges, budget reservations and the audit log (synchronous, see `_sql`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from .._exceptions import ConflictError, NotFoundError, QuotaExceededError
from ..models import (
    ApiKeyInfo,
    AuditEvent,
    Client,
    Deliverable,
    LoginFailures,
    LoginThrottle,
    Notification,
    Request,
    Role,
    Session,
    User,
    refill_bucket,
)
from ..protocol.codec import dumps
from . import _tables as t
from ._sql import Database

__all__ = ["ADMISSION", "AccountRecords"]

#: The stage id of an execution's admission hold (no stage has an empty id).
ADMISSION = ""


class AccountRecords(Database):
    """Clients, users, sessions, API keys, requests and what settles them."""

    # -- clients, users, sessions ------------------------------------------------------------

    def add_client(self, client: Client) -> None:
        """Store a new client. Raises `ConflictError` if the name is taken (in any case)."""
        self._insert_unique(t.CLIENTS, client, lambda: _client_taken(client.name))

    def update_client(self, client: Client) -> None:
        """Replace a stored client."""
        self._update(t.CLIENTS, client)

    def get_client(self, client_id: str) -> Client:
        """The client `client_id`. Raises `NotFoundError`."""
        return self._must(self._one(t.CLIENTS, "id = ?", (client_id,)), "client", client_id)

    def list_clients(self) -> list[Client]:
        """Every client, by name."""
        return self._many(t.CLIENTS, "TRUE ORDER BY name", ())

    def add_user(self, user: User, password_hash: str) -> None:
        """Store a new user. Raises `ConflictError` if the email is taken (in any case)."""
        self._insert_unique(
            t.USERS, user, lambda: _email_taken(user.email), password_hash=password_hash
        )

    def get_user(self, user_id: str) -> User:
        """The user `user_id`. Raises `NotFoundError`."""
        return self._must(self._one(t.USERS, "id = ?", (user_id,)), "user", user_id)

    def find_user(self, email: str) -> tuple[User, str] | None:
        """The user with `email` (case-insensitive) and its password hash, or None."""
        row = self._execute("SELECT * FROM users WHERE email = ?", (email,)).fetchone()
        return None if row is None else (t.USERS.from_row(row), str(row["password_hash"]))

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace a user's password hash (after a re-hash with new cost parameters)."""
        self._execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))

    def list_users(self, client_id: str | None = None) -> list[User]:
        """Users of one client, or all users."""
        if client_id is None:
            return self._many(t.USERS, "TRUE ORDER BY email", ())
        return self._many(t.USERS, "client_id = ? ORDER BY email", (client_id,))

    def count_admins(self) -> int:
        """How many admin users exist."""
        sql = "SELECT COUNT(*) FROM users WHERE role = ?"
        return int(self._execute(sql, (Role.ADMIN.value,)).fetchone()[0])

    def add_session(self, session: Session) -> None:
        """Store a new session."""
        self._insert(t.SESSIONS, session)

    def get_session(self, token_hash: str) -> Session | None:
        """The session stored under `token_hash`, or None."""
        return self._one(t.SESSIONS, "token_hash = ?", (token_hash,))

    def revoke_session(self, token_hash: str, at: datetime) -> None:
        """Mark a session revoked (idempotent)."""
        sql = "UPDATE sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL"
        self._execute(sql, (at.isoformat(), token_hash))

    def delete_sessions_expired_before(self, at: datetime) -> int:
        """Forget sessions that expired before `at`; returns how many."""
        sql = "DELETE FROM sessions WHERE expires_at < ?"
        return self._execute(sql, (at.isoformat(),)).rowcount

    # -- API keys ------------------------------------------------------------------------------

    def add_api_key(self, info: ApiKeyInfo, key_hash: str) -> None:
        """Store an API key's record and hash (never the key)."""
        row = {
            "id": info.id,
            "prefix": info.prefix,
            "key_hash": key_hash,
            "user_id": info.user_id,
            "client_id": info.client_id,
            "role": info.role.value,
            "created_at": info.created_at.isoformat(),
            "revoked_at": None,
            "name": info.name,
        }
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        self._execute(f"INSERT INTO api_keys ({cols}) VALUES ({marks})", row)  # noqa: S608

    def _api_key(self, row: Any) -> ApiKeyInfo:
        return ApiKeyInfo(
            row["id"],
            row["prefix"],
            row["user_id"],
            row["client_id"],
            Role(row["role"]),
            datetime.fromisoformat(row["created_at"]),
            datetime.fromisoformat(row["revoked_at"]) if row["revoked_at"] else None,
            row["name"],
        )

    def find_api_key(self, prefix: str) -> tuple[ApiKeyInfo, str] | None:
        """The key with this lookup prefix and its stored hash, or None."""
        row = self._execute("SELECT * FROM api_keys WHERE prefix = ?", (prefix,)).fetchone()
        return None if row is None else (self._api_key(row), str(row["key_hash"]))

    def list_api_keys(self, user_id: str | None = None) -> list[ApiKeyInfo]:
        """API keys (of one user, or all), oldest first."""
        if user_id is None:
            rows = self._execute("SELECT * FROM api_keys ORDER BY created_at, id").fetchall()
        else:
            sql = "SELECT * FROM api_keys WHERE user_id = ? ORDER BY created_at, id"
            rows = self._execute(sql, (user_id,)).fetchall()
        return [self._api_key(r) for r in rows]

    def revoke_api_key(self, key_id: str, at: datetime) -> ApiKeyInfo:
        """Revoke a key (idempotent). Raises `NotFoundError`."""
        self._execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
            (at.isoformat(), key_id),
        )
        row = self._execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no API key {key_id!r}", details={"id": key_id})
        return self._api_key(row)

    # -- requests ------------------------------------------------------------------------------

    def add_request(self, request: Request) -> None:
        """Store a new request."""
        self._insert(t.REQUESTS, request)

    def update_request(self, request: Request, *, expect_status: str | None = None) -> None:
        """Replace a stored request; with `expect_status`, only if it still has that status.

        Raises `ConflictError` if the request changed status meanwhile.
        """
        if expect_status is None:
            self._update(t.REQUESTS, request)
        elif not self._update(t.REQUESTS, request, " AND status = :_expect", _expect=expect_status):
            raise ConflictError(
                f"request {request.id} is no longer {expect_status}", details={"id": request.id}
            )

    def get_request(self, request_id: str) -> Request:
        """The request `request_id`. Raises `NotFoundError`."""
        found = self._one(t.REQUESTS, "id = ?", (request_id,))
        return self._must(found, "request", request_id)

    def list_requests(self, client_id: str | None = None) -> list[Request]:
        """Requests of one client, or all, newest first."""
        if client_id is None:
            return self._many(t.REQUESTS, "TRUE ORDER BY created_at DESC, id DESC", ())
        where = "client_id = ? ORDER BY created_at DESC, id DESC"
        return self._many(t.REQUESTS, where, (client_id,))

    def count_requests_since(self, client_id: str, since: datetime) -> int:
        """How many requests `client_id` made at or after `since`."""
        sql = "SELECT COUNT(*) FROM requests WHERE client_id = ? AND created_at >= ?"
        return int(self._execute(sql, (client_id, since.isoformat())).fetchone()[0])

    # -- deliverables, notifications, charges, audit -------------------------------------------

    def add_deliverable(self, deliverable: Deliverable) -> None:
        """Store a deliverable record."""
        self._insert(t.DELIVERABLES, deliverable)

    def get_deliverable(self, deliverable_id: str) -> Deliverable:
        """The deliverable `deliverable_id`. Raises `NotFoundError`."""
        found = self._one(t.DELIVERABLES, "id = ?", (deliverable_id,))
        return self._must(found, "deliverable", deliverable_id)

    def list_deliverables(self, request_id: str) -> list[Deliverable]:
        """Deliverables of a request, oldest first."""
        return self._many(t.DELIVERABLES, "request_id = ? ORDER BY created_at, id", (request_id,))

    def add_notification(self, notification: Notification) -> None:
        """Store a notification."""
        self._insert(t.NOTIFICATIONS, notification)

    def list_notifications(self, user_id: str, unread_only: bool = False) -> list[Notification]:
        """A user's notifications, newest first."""
        read = " AND read_at IS NULL" if unread_only else ""
        where = f"user_id = ?{read} ORDER BY created_at DESC, id DESC"
        return self._many(t.NOTIFICATIONS, where, (user_id,))

    def mark_notification_read(self, notification_id: str, user_id: str, at: datetime) -> bool:
        """Mark one of `user_id`'s notifications read; False if it has no such notification."""
        sql = "UPDATE notifications SET read_at = COALESCE(read_at, ?) WHERE id = ? AND user_id = ?"
        return self._execute(sql, (at.isoformat(), notification_id, user_id)).rowcount == 1

    def _locked_client(self, client_id: str) -> Client:
        """The client, its row locked until the transaction ends, so that budget checks and
        charges of concurrent transactions (other processes too) queue up rather than each
        reading the same balance. SQLite's `BEGIN IMMEDIATE` holds the database already."""
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        return self._must(self._one(t.CLIENTS, f"id = ?{lock}", (client_id,)), "client", client_id)

    def charge(self, client_id: str, execution_id: str, total: Decimal, at: datetime) -> Decimal:
        """Bring an execution's charge up to `total`; returns the amount newly charged.

        Settling the same execution again (a repeated report, or a retried execution that
        cost more) charges only the difference. A new calendar month (UTC) resets the
        client's usage before charging.
        """
        month = at.strftime("%Y-%m")
        with self.transaction():
            client = self._locked_client(client_id)
            delta = total - self._charged(execution_id)
            if delta <= 0:
                return Decimal(0)
            used = client.used_in(month)
            self._execute(
                "UPDATE clients SET used_this_month_usd = ?, month = ? WHERE id = ?",
                (str(used + delta), month, client_id),
            )
            self._execute(
                "INSERT INTO charges(execution_id, client_id, amount_usd, month, at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(execution_id) DO UPDATE SET "
                "amount_usd = excluded.amount_usd, month = excluded.month, at = excluded.at",
                (execution_id, client_id, str(total), month, at.isoformat()),
            )
            return delta

    def _charged(self, execution_id: str) -> Decimal:
        row = self._execute(
            "SELECT amount_usd FROM charges WHERE execution_id = ?", (execution_id,)
        ).fetchone()
        return Decimal(row[0]) if row else Decimal(0)

    # -- budget reservations --------------------------------------------------------------
    #
    # An execution holds budget twice over, and counts the larger: its admission hold (the
    # template's estimate, taken when it was admitted, stage id `ADMISSION`) and the sum of
    # its stages' holds (a running stage's estimate, a finished one's actual cost). Stages
    # that stay within the estimate draw on the admission hold; one that goes beyond it
    # needs budget nobody else holds.

    def _holds(self, client_id: str) -> dict[str, tuple[Decimal, Decimal]]:
        """Per execution of the client: (admission hold, sum of its stages' holds)."""
        holds: dict[str, tuple[Decimal, Decimal]] = {}
        rows = self._execute(
            "SELECT execution_id, stage_id, amount_usd FROM reservations WHERE client_id = ?",
            (client_id,),
        ).fetchall()
        for execution_id, stage_id, amount in rows:
            admission, stages = holds.get(execution_id, (Decimal(0), Decimal(0)))
            if stage_id == ADMISSION:
                admission += Decimal(amount)
            else:
                stages += Decimal(amount)
            holds[execution_id] = (admission, stages)
        return holds

    def reserved_usd(self, client_id: str) -> Decimal:
        """What the client's executions in flight hold of its budget."""
        return sum((max(a, s) for a, s in self._holds(client_id).values()), Decimal(0))

    def admit(
        self,
        client_id: str,
        execution_id: str,
        estimate: Decimal,
        at: datetime,
        concurrent: int | None = None,
    ) -> Decimal:
        """Admit an execution: hold its `estimate` (less what it was charged already, for a
        retry) if what is left of the client's monthly budget after usage and every other
        hold covers it, and if fewer than `concurrent` other executions of the client are
        pending or running. Check and hold are one transaction, so concurrent admissions
        never admit more than fits. Returns the amount held.

        Raises `QuotaExceededError` (`details`: `reason` "budget", with `estimate_usd` and
        `remaining_usd`; or "concurrency", with `concurrent_executions`).
        """
        with self.transaction():
            client = self._locked_client(client_id)
            hold = max(Decimal(0), estimate - self._charged(execution_id))
            holds = self._holds(client_id)
            holds.pop(execution_id, None)
            left = (
                client.monthly_budget_usd
                - client.used_in(at.strftime("%Y-%m"))
                - sum((max(a, s) for a, s in holds.values()), Decimal(0))
            )
            if hold > left:
                raise QuotaExceededError(
                    f"estimated cost {hold} USD exceeds the remaining budget "
                    f"{max(left, Decimal(0))} USD",
                    details={
                        "reason": "budget",
                        "estimate_usd": str(hold),
                        "remaining_usd": str(max(left, Decimal(0))),
                    },
                )
            if concurrent is not None:
                active = self._execute(
                    "SELECT COUNT(*) FROM executions WHERE client_id = ? AND id <> ? "
                    "AND status IN (?, ?)",
                    (client_id, execution_id, "pending", "running"),
                ).fetchone()[0]
                if int(active) >= concurrent:
                    raise QuotaExceededError(
                        f"the {client.tier.value} tier runs {concurrent} execution(s) at a time",
                        details={"reason": "concurrency", "concurrent_executions": concurrent},
                    )
            self._hold(client_id, execution_id, ADMISSION, hold, at)
            return hold

    def reserve(
        self,
        client_id: str,
        execution_id: str,
        stage_id: str,
        amount: Decimal,
        at: datetime,
        *,
        check: bool = True,
    ) -> Decimal | None:
        """Hold `amount` of the client's budget for a stage (replacing its earlier hold).

        With `check`, returns what the stage may spend at most, and raises
        `QuotaExceededError` if that is less than `amount`: the larger of the execution's
        admission hold and what the budget leaves after usage and other executions' holds,
        less its other stages' holds. Without, the hold records a cost already incurred
        (`None`).
        """
        with self.transaction():
            client = self._locked_client(client_id)
            holds = self._holds(client_id)
            admission, _ = holds.pop(execution_id, (Decimal(0), Decimal(0)))
            available = None
            if check:
                rows = self._execute(
                    "SELECT amount_usd FROM reservations "
                    "WHERE execution_id = ? AND stage_id NOT IN (?, ?)",
                    (execution_id, ADMISSION, stage_id),
                ).fetchall()
                others = sum((Decimal(r[0]) for r in rows), Decimal(0))
                left = (
                    client.monthly_budget_usd
                    - client.used_in(at.strftime("%Y-%m"))
                    - sum((max(a, s) for a, s in holds.values()), Decimal(0))
                )
                available = max(left, admission) - others
                if amount > available:
                    raise QuotaExceededError(
                        f"stage {stage_id} needs an estimated {amount} USD but only "
                        f"{max(available, Decimal(0))} USD of the monthly budget is left",
                        details={
                            "reason": "budget",
                            "estimate_usd": str(amount),
                            "available_usd": str(max(available, Decimal(0))),
                        },
                    )
            self._hold(client_id, execution_id, stage_id, amount, at)
            return available

    def _hold(
        self, client_id: str, execution_id: str, stage_id: str, amount: Decimal, at: datetime
    ) -> None:
        # An upsert: two processes holding for the same stage at once (a replica that lost
        # the execution and the one that took it over) do not collide.
        self._execute(
            "INSERT INTO reservations(execution_id, stage_id, client_id, amount_usd, at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(execution_id, stage_id) DO UPDATE SET "
            "amount_usd = excluded.amount_usd, at = excluded.at",
            (execution_id, stage_id, client_id, str(amount), at.isoformat()),
        )

    def release(self, execution_id: str, stage_id: str | None = None) -> None:
        """Drop a stage's hold, or every hold of the execution (its admission hold too)."""
        if stage_id is None:
            self._execute("DELETE FROM reservations WHERE execution_id = ?", (execution_id,))
        else:
            self._execute(
                "DELETE FROM reservations WHERE execution_id = ? AND stage_id = ?",
                (execution_id, stage_id),
            )

    def take_rate_token(self, key: str, per_minute: int, now: float) -> float | None:
        """Take one request's token from `key`'s bucket (see `models.refill_bucket`): `None`
        if it may go, else the seconds until it may. Atomic across processes."""
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        with self.transaction():
            self._execute(
                "INSERT INTO rate_buckets(key, tokens, at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO NOTHING",
                (key, float(per_minute), now),
            )
            tokens, at = self._execute(
                f"SELECT tokens, at FROM rate_buckets WHERE key = ?{lock}",  # noqa: S608
                (key,),
            ).fetchone()
            left, wait = refill_bucket(float(tokens), float(at), now, per_minute)
            self._execute(
                "UPDATE rate_buckets SET tokens = ?, at = ? WHERE key = ?",
                (left, max(now, float(at)), key),
            )
            return wait

    def login_failures(self, key: str) -> LoginFailures:
        """`key`'s failed logins (none recorded: zero)."""
        row = self._execute(
            "SELECT failures, last_at, locked_until FROM login_failures WHERE key = ?", (key,)
        ).fetchone()
        return LoginFailures() if row is None else LoginFailures(int(row[0]), *map(float, row[1:]))

    def note_login_failure(
        self, key: str, free: int, throttle: LoginThrottle, now: float
    ) -> LoginFailures:
        """Count one failed login for `key` (see `LoginThrottle.after_failure`); its failures
        after. Atomic across processes."""
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        with self.transaction():
            self._execute(
                "INSERT INTO login_failures(key, failures, last_at, locked_until) "
                "VALUES (?, 0, ?, 0) ON CONFLICT(key) DO NOTHING",
                (key, now),
            )
            row = self._execute(
                "SELECT failures, last_at, locked_until FROM login_failures "  # noqa: S608
                f"WHERE key = ?{lock}",
                (key,),
            ).fetchone()
            seen = LoginFailures(int(row[0]), float(row[1]), float(row[2]))
            after = throttle.after_failure(seen, free, now)
            self._execute(
                "UPDATE login_failures SET failures = ?, last_at = ?, locked_until = ? "
                "WHERE key = ?",
                (after.failures, after.last_at, after.locked_until, key),
            )
            return after

    def forget_login_failures(self, key: str) -> None:
        """Forget `key`'s failed logins (after a successful login)."""
        self._execute("DELETE FROM login_failures WHERE key = ?", (key,))

    def salt(self, name: str, candidate: str) -> str:
        """The database's salt called `name`: `candidate` if it had none yet (it keeps the
        first one stored, across processes)."""
        self._execute(
            "INSERT INTO salts(name, value) VALUES (?, ?) ON CONFLICT(name) DO NOTHING",
            (name, candidate),
        )
        return str(self._execute("SELECT value FROM salts WHERE name = ?", (name,)).fetchone()[0])

    def append_audit(
        self,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        details: dict[str, Any],
    ) -> AuditEvent:
        """Append to the audit log (which the database refuses to update or delete)."""
        [ident] = self._execute(
            "INSERT INTO audit(at, actor, action, target, outcome, details) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (at.isoformat(), actor, action, target, outcome, dumps(details).decode()),
        ).fetchone()
        return AuditEvent(int(ident), at, actor, action, target, outcome, details)

    def list_audit(self, *, action: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """Audit events, newest first, optionally of one action."""
        if action is None:
            return self._many(t.AUDIT, "TRUE ORDER BY id DESC LIMIT ?", (limit,))
        return self._many(t.AUDIT, "action = ? ORDER BY id DESC LIMIT ?", (action, limit))


# Ids are fresh and random, so of a new row's unique values only these can be taken.
def _client_taken(name: str) -> ConflictError:
    return ConflictError(f"a client named {name!r} already exists", details={"name": name})


def _email_taken(email: str) -> ConflictError:
    return ConflictError(f"a user with email {email} already exists", details={"email": email})
