"""The public surface is curated: these are exactly the names `aifactory` exports."""

from __future__ import annotations

import aifactory

EXPECTED = {
    "ApiKeyInfo",
    "AuditEvent",
    "Client",
    "Cost",
    "Deliverable",
    "Execution",
    "ExecutionEvent",
    "ExecutionOwner",
    "ExecutionStatus",
    "Notification",
    "PasswordReset",
    "Recommendation",
    "Request",
    "RequestStatus",
    "Role",
    "StageRun",
    "StageStatus",
    "StorageRef",
    "Template",
    "TemplateVersion",
    "Tier",
    "Urgency",
    "Usage",
    "User",
    "WorkerStatus",
    "JsonFormatter",
    "log_context",
    "log_ids",
    "AIFactoryError",
    "AccountEvent",
    "AsyncFactory",
    "AsyncSession",
    "AuthenticationError",
    "BadInputError",
    "Clock",
    "ConflictError",
    "ConnectionFailedError",
    "Factory",
    "FactoryConfig",
    "HandshakeRejectedError",
    "InputRejectedError",
    "IdFactory",
    "IntegrityError",
    "LeaseLostError",
    "ManualClock",
    "NotFoundError",
    "Notifier",
    "ParameterError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RandomIds",
    "SequentialIds",
    "Session",
    "SessionExpiredError",
    "StageFailedError",
    "StageTimeoutError",
    "StaleAttemptError",
    "StorageConfig",
    "StorageError",
    "StoreBusyError",
    "SystemClock",
    "TransportError",
    "TransportTimeoutError",
    "UnsafeKeyError",
    "WorkerError",
    "Webhook",
    "WebhookDelivery",
    "WebhookSignatureError",
    "EventNotifier",
    "__version__",
    "connect",
    "embedded",
    "verify_webhook",
}


def test_the_exported_names_are_pinned() -> None:
    assert set(aifactory.__all__) == EXPECTED
    for name in aifactory.__all__:
        assert hasattr(aifactory, name), name


def test_every_error_is_an_aifactory_error() -> None:
    errors = [getattr(aifactory, n) for n in EXPECTED if n.endswith("Error")]
    assert all(issubclass(e, aifactory.AIFactoryError) for e in errors)
