"""The domain's values: attrs classes and enums, no I/O."""

from .accounts import (
    TIER_LIMITS,
    ApiKeyInfo,
    Client,
    PasswordReset,
    Principal,
    Session,
    TierLimits,
    User,
    refill_bucket,
)
from .audit import AuditEvent
from .enums import ExecutionStatus, RequestStatus, Role, StageStatus, StorageScheme, Tier, Urgency
from .execution import (
    Checkpoint,
    Cost,
    Execution,
    ExecutionEvent,
    ExecutionOwner,
    StageRun,
    Usage,
    WorkerStatus,
)
from .logins import LoginFailures, LoginThrottle
from .metrics import METRICS_GROUPINGS, MetricsLine, MetricsReport
from .storage_ref import StorageRef, check_key, check_namespace
from .templates import TemplateVersion
from .usage import ModelUsage, UsageLine, UsageReport
from .webhooks import WebhookDelivery
from .work import (
    Deliverable,
    Notification,
    ParameterSpec,
    Recommendation,
    Request,
    StagePolicy,
    StageSpec,
    Template,
)

__all__ = [
    "METRICS_GROUPINGS",
    "TIER_LIMITS",
    "ApiKeyInfo",
    "AuditEvent",
    "Checkpoint",
    "Client",
    "Cost",
    "Deliverable",
    "Execution",
    "ExecutionEvent",
    "ExecutionOwner",
    "ExecutionStatus",
    "LoginFailures",
    "LoginThrottle",
    "MetricsLine",
    "MetricsReport",
    "ModelUsage",
    "Notification",
    "ParameterSpec",
    "PasswordReset",
    "Principal",
    "Recommendation",
    "Request",
    "RequestStatus",
    "Role",
    "Session",
    "StagePolicy",
    "StageRun",
    "StageSpec",
    "StageStatus",
    "StorageRef",
    "StorageScheme",
    "Template",
    "TemplateVersion",
    "Tier",
    "TierLimits",
    "Urgency",
    "Usage",
    "UsageLine",
    "UsageReport",
    "User",
    "WebhookDelivery",
    "WorkerStatus",
    "check_key",
    "check_namespace",
    "refill_bucket",
]
