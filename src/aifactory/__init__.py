"""aifactory: an AI factory you can embed in one Python process or deploy as services.

```python
import aifactory

with aifactory.embedded(home="./.aifactory") as factory:
    password = factory.bootstrap_admin("admin@example.com")
    admin = factory.login("admin@example.com", password, login_type="admin")
```
"""

from __future__ import annotations

from pathlib import Path

from ._clock import Clock, IdFactory, ManualClock, RandomIds, SequentialIds, SystemClock
from ._exceptions import (
    AIFactoryError,
    AuthenticationError,
    BadInputError,
    ConflictError,
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
    UnsafeKeyError,
    WorkerError,
)
from ._sync import Factory, Session
from ._version import __version__
from .client import AsyncFactory, AsyncSession
from .config import FactoryConfig
from .kam.notifier import Notifier
from .storage import StorageConfig

__all__ = [
    "AIFactoryError",
    "AsyncFactory",
    "AsyncSession",
    "AuthenticationError",
    "BadInputError",
    "Clock",
    "ConflictError",
    "Factory",
    "FactoryConfig",
    "HandshakeRejectedError",
    "IdFactory",
    "InputRejectedError",
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
    "UnsafeKeyError",
    "WorkerError",
    "__version__",
    "connect",
    "embedded",
]


def connect(base_url: str, *, api_key: str | None = None, token: str | None = None) -> Factory:
    """A synchronous client for a remote factory at `base_url` (its HTTP API), the same
    `Factory` as `embedded()`. Log in with `login(...)`, or pass an `api_key` (or a session
    `token`) and take its view with `session()`. Close it, or use it in a `with` block. For
    asyncio/trio code use `AsyncFactory.connect()`.
    """
    return Factory.connect(base_url, api_key=api_key, token=token)


def embedded(
    home: str | Path | None = None,
    *,
    config: FactoryConfig | None = None,
    notifier: Notifier | None = None,
) -> Factory:
    """Open the embedded factory whose data lives in `home` (default `$AIFACTORY_HOME` or
    `./.aifactory`), as a synchronous `Factory`. Close it, or use it in a `with` block.

    For asyncio/trio code use `AsyncFactory.embedded()` instead.
    """
    return Factory.embedded(home, config=config, notifier=notifier)
