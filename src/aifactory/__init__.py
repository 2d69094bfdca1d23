"""aifactory: an AI factory you can embed in one Python process or deploy as services.

```python
import aifactory

with aifactory.embedded(home="./.aifactory") as factory:
    password = factory.bootstrap_admin("admin@example.com")
    admin = factory.login("admin@example.com", password, login_type="admin")
```
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._clock import Clock, IdFactory, ManualClock, RandomIds, SequentialIds, SystemClock
from ._exceptions import (
    AIFactoryError,
    AuthenticationError,
    BadInputError,
    ConflictError,
    ConnectionFailedError,
    HandshakeRejectedError,
    InputRejectedError,
    IntegrityError,
    LeaseLostError,
    NotFoundError,
    ParameterError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
    SessionExpiredError,
    StageFailedError,
    StageTimeoutError,
    StaleAttemptError,
    StorageError,
    StoreBusyError,
    TransportError,
    TransportTimeoutError,
    UnsafeKeyError,
    WorkerError,
)
from ._version import __version__
from .models import (
    ApiKeyInfo,
    AuditEvent,
    Client,
    Cost,
    Deliverable,
    Execution,
    ExecutionEvent,
    ExecutionOwner,
    ExecutionStatus,
    Notification,
    PasswordReset,
    Recommendation,
    Request,
    RequestStatus,
    Role,
    StageRun,
    StageStatus,
    StorageRef,
    Template,
    TemplateVersion,
    Tier,
    Urgency,
    Usage,
    User,
    WebhookDelivery,
    WorkerStatus,
)

if TYPE_CHECKING:
    from ._logs import JsonFormatter, log_context, log_ids
    from ._sync import Factory, Session
    from .client import AsyncFactory, AsyncSession
    from .config import FactoryConfig
    from .kam.notifier import AccountEvent, EventNotifier, Notifier
    from .kam.webhook_signing import WebhookSignatureError, verify_webhook
    from .kam.webhooks import Webhook
    from .storage import StorageConfig

# The clients, the factory's configuration and what they bring in (httpx, the embedded
# factory, fsspec, ...) load on first use: `import aifactory` stays quick.
_LAZY = {
    "AsyncFactory": ".client",
    "AsyncSession": ".client",
    "Factory": "._sync",
    "Session": "._sync",
    "FactoryConfig": ".config",
    "Notifier": ".kam.notifier",
    "AccountEvent": ".kam.notifier",
    "EventNotifier": ".kam.notifier",
    "Webhook": ".kam.webhooks",
    # A webhook's receiver needs only this: it loads no factory.
    "verify_webhook": ".kam.webhook_signing",
    "WebhookSignatureError": ".kam.webhook_signing",
    "StorageConfig": ".storage",
    # Logging with the factory's ids, for an application that embeds it.
    "JsonFormatter": "._logs",
    "log_context": "._logs",
    "log_ids": "._logs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aifactory' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AIFactoryError",
    "AccountEvent",
    "ApiKeyInfo",
    "AsyncFactory",
    "AsyncSession",
    "AuditEvent",
    "AuthenticationError",
    "BadInputError",
    "Client",
    "Clock",
    "ConflictError",
    "ConnectionFailedError",
    "Cost",
    "Deliverable",
    "EventNotifier",
    "Execution",
    "ExecutionEvent",
    "ExecutionOwner",
    "ExecutionStatus",
    "Factory",
    "FactoryConfig",
    "HandshakeRejectedError",
    "IdFactory",
    "InputRejectedError",
    "IntegrityError",
    "JsonFormatter",
    "LeaseLostError",
    "ManualClock",
    "NotFoundError",
    "Notification",
    "Notifier",
    "ParameterError",
    "PasswordReset",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RandomIds",
    "Recommendation",
    "Request",
    "RequestStatus",
    "Role",
    "SequentialIds",
    "Session",
    "SessionExpiredError",
    "StageFailedError",
    "StageRun",
    "StageStatus",
    "StageTimeoutError",
    "StaleAttemptError",
    "StorageConfig",
    "StorageError",
    "StorageRef",
    "StoreBusyError",
    "SystemClock",
    "Template",
    "TemplateVersion",
    "Tier",
    "TransportError",
    "TransportTimeoutError",
    "UnsafeKeyError",
    "Urgency",
    "Usage",
    "User",
    "Webhook",
    "WebhookDelivery",
    "WebhookSignatureError",
    "WorkerError",
    "WorkerStatus",
    "__version__",
    "connect",
    "embedded",
    "log_context",
    "log_ids",
    "verify_webhook",
]


def connect(base_url: str, *, api_key: str | None = None, token: str | None = None) -> Factory:
    """A synchronous client for a remote factory at `base_url` (its HTTP API), the same
    `Factory` as `embedded()`. Log in with `login(...)`, or pass an `api_key` (or a session
    `token`) and take its view with `session()`. Close it, or use it in a `with` block. For
    asyncio/trio code use `AsyncFactory.connect()`.
    """
    from ._sync import Factory

    return Factory.connect(base_url, api_key=api_key, token=token)


def embedded(
    home: str | Path | None = None,
    *,
    config: FactoryConfig | None = None,
    notifier: Notifier | None = None,
) -> Factory:
    """Open the embedded factory whose data lives in `home` (default `$AIFACTORY_HOME` or
    `./.aifactory`), as a synchronous `Factory`. Close it, or use it in a `with` block.
    `notifier` is one notifier besides the in-app notifications (always kept) and the
    config's `notifiers` and `webhooks`.

    For asyncio/trio code use `AsyncFactory.embedded()` instead.
    """
    from ._sync import Factory

    return Factory.embedded(home, config=config, notifier=notifier)
