"""Execution leases: which process runs an execution, until when, fenced by a token.

An execution is `runnable` from the moment it is asked to run until it ends. A process runs
it only while it holds its lease: `owner`, until `lease_expires_at`, with `lease_token`.
Taking a lease is a compare-and-set on the token (`claim`), or, for work nobody holds,
`claim_ready`, which on PostgreSQL skips rows another replica is claiming at the same moment
(`FOR UPDATE SKIP LOCKED`); SQLite's single writer serialises claims anyway. Every commit of
the holder checks its token (`check_lease`): once another process has taken the lease over,
the old holder can commit nothing about the execution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .._exceptions import LeaseLostError
from ..models import ExecutionStatus
from ._sql import Database
from .writes import Claim, Lease

__all__ = ["LeaseRecords"]

_FINAL = tuple(s.value for s in ExecutionStatus if s.is_final)


def _lease(row: Any) -> Lease:
    expires = row["lease_expires_at"]
    return Lease(
        row["id"],
        ExecutionStatus(row["status"]),
        bool(row["runnable"]),
        row["owner"],
        int(row["lease_token"]),
        datetime.fromisoformat(expires) if expires else None,
    )


_COLUMNS = "id, status, runnable, owner, lease_token, lease_expires_at"


class LeaseRecords(Database):
    """Claiming, renewing, fencing and handing back execution leases."""

    def lease_of(self, execution_id: str) -> Lease:
        """The lease of an execution. Raises `NotFoundError`."""
        sql = f"SELECT {_COLUMNS} FROM executions WHERE id = ?"  # noqa: S608 - fixed columns
        row = self._execute(sql, (execution_id,)).fetchone()
        return _lease(self._must(row, "execution", execution_id))

    def list_leases(self) -> list[Lease]:
        """The leases of executions that are runnable or held, oldest first."""
        sql = (
            f"SELECT {_COLUMNS} FROM executions "  # noqa: S608 - fixed columns
            "WHERE runnable OR owner IS NOT NULL ORDER BY created_at, id"
        )
        return [_lease(row) for row in self._execute(sql).fetchall()]

    def claim(self, execution_id: str, claim: Claim) -> int:
        """Take the lease if its token is still `claim.token`, marking the execution runnable;
        returns the new token. Raises `LeaseLostError` if another process took it meanwhile
        (or the execution has ended)."""
        cursor = self._execute(
            "UPDATE executions SET owner = ?, lease_token = lease_token + 1, "
            "lease_expires_at = ?, runnable = ? WHERE id = ? AND lease_token = ? "
            "AND status NOT IN (?, ?, ?)",
            (
                claim.owner,
                claim.expires_at.isoformat(),
                True,
                execution_id,
                claim.token,
                *_FINAL,
            ),
        )
        self._fence(
            cursor,
            lambda: LeaseLostError(
                f"execution {execution_id} was taken by another process",
                details={"execution_id": execution_id},
            ),
        )
        return claim.token + 1

    def claim_ready(
        self,
        owner: str,
        now: datetime,
        expires_at: datetime,
        limit: int,
        dead: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> list[tuple[str, int]]:
        """Take the leases of up to `limit` runnable executions nobody holds: never held,
        expired, or held by one of the `dead` owners; never those in `exclude` (what the
        caller is starting itself). Returns their ids and new tokens."""
        skip = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""
        dead_marks = ", ".join("?" * len(dead)) or "NULL"  # only placeholders
        # (`NOT IN (NULL)` would be false for every row: an empty list leaves the test out.)
        excluded = f"AND id NOT IN ({', '.join('?' * len(exclude))}) " if exclude else ""
        sql = (
            "UPDATE executions SET owner = ?, lease_token = lease_token + 1, "  # noqa: S608
            "lease_expires_at = ? WHERE id IN (SELECT id FROM executions WHERE runnable AND "
            f"(owner IS NULL OR lease_expires_at < ? OR owner IN ({dead_marks})) "
            f"{excluded}ORDER BY created_at, id LIMIT ?{skip}) RETURNING id, lease_token"
        )
        params = (owner, expires_at.isoformat(), now.isoformat(), *dead, *exclude, limit)
        rows = self._execute(sql, params).fetchall()
        return [(str(row[0]), int(row[1])) for row in rows]

    def renew_leases(
        self, owner: str, leases: Mapping[str, int], expires_at: datetime
    ) -> list[str]:
        """Extend `owner`'s leases (execution id → token); returns the ids it no longer holds."""
        lost = []
        with self.transaction():
            for execution_id, token in leases.items():
                renewed = self._execute(
                    "UPDATE executions SET lease_expires_at = ? "
                    "WHERE id = ? AND owner = ? AND lease_token = ?",
                    (expires_at.isoformat(), execution_id, owner, token),
                ).rowcount
                if not renewed:
                    lost.append(execution_id)
        return lost

    def release_leases(
        self, owner: str, leases: Mapping[str, int], *, finished: bool = False
    ) -> None:
        """Hand `owner`'s leases back: they stay runnable, for another process to take at
        once; or, `finished`, the executions ended and were reported, and nobody need run
        them again. Leases `owner` no longer holds are left alone."""
        with self.transaction():
            for execution_id, token in leases.items():
                self._execute(
                    "UPDATE executions SET owner = NULL, lease_expires_at = NULL, "
                    "runnable = runnable AND ? WHERE id = ? AND owner = ? AND lease_token = ?",
                    (not finished, execution_id, owner, token),
                )

    def check_lease(self, execution_id: str, token: int) -> None:
        """Inside a transaction: fence it on the lease token (on PostgreSQL this also locks
        the row until the commit, so a claim cannot slip in between). Raises
        `LeaseLostError`."""
        cursor = self._execute(
            "UPDATE executions SET lease_token = lease_token WHERE id = ? AND lease_token = ?",
            (execution_id, token),
        )
        self._fence(
            cursor,
            lambda: LeaseLostError(
                f"execution {execution_id} has been taken over by another process",
                details={"execution_id": execution_id},
            ),
        )
