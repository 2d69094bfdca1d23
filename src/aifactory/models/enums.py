"""The named states and kinds of the domain."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ExecutionStatus",
    "RequestStatus",
    "Role",
    "StageStatus",
    "StorageScheme",
    "Tier",
    "Urgency",
]


class Tier(StrEnum):
    """A client's service tier; decides limits, templates and visible parameters."""

    BASIC = "basic"
    STANDARD = "standard"
    PREMIUM = "premium"
    ENTERPRISE = "enterprise"

    @property
    def rank(self) -> int:
        """Position in the tier ladder (basic = 0)."""
        return list(Tier).index(self)


class Role(StrEnum):
    """What a user is: an administrator, an account manager, or a client organisation's user."""

    ADMIN = "admin"
    ACCOUNT_MANAGER = "account_manager"
    CLIENT = "client"

    @property
    def is_staff(self) -> bool:
        """Admins and account managers act for the factory, not for one client."""
        return self in (Role.ADMIN, Role.ACCOUNT_MANAGER)


class Urgency(StrEnum):
    """How soon the client needs the work."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class RequestStatus(StrEnum):
    """Life of a client request, from submission to deliverable."""

    PENDING = "pending"
    TEMPLATE_ASSIGNED = "template_assigned"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ExecutionStatus(StrEnum):
    """Life of one pipeline execution."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """Completed, failed and cancelled executions never change again (unless retried)."""
        return self in (
            ExecutionStatus.COMPLETED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
        )


class StageStatus(StrEnum):
    """Life of one stage within an execution."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """Whether the stage will not run (again) in this execution run."""
        return self is not StageStatus.PENDING and self is not StageStatus.RUNNING


class StorageScheme(StrEnum):
    """Where a blob lives: inside the message, in a KV namespace, or in an R2 bucket."""

    INLINE = "inline"
    KV = "kv"
    R2 = "r2"
