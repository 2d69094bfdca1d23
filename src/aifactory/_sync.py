"""`Factory`: the synchronous facade over `AsyncFactory`, through an anyio blocking portal.

The portal runs an event loop in its own thread, so these calls work from plain scripts and
from inside a running event loop (a Jupyter cell) alike. The sync resource groups are the
async ones' twins, generated from them (`resources/_sync.py`): the same signatures and the
same return types, so a type checker sees `Execution` where the async API returns one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from .client import AsyncFactory, AsyncSession
from .models import User
from .resources._sync import (
    ApiKeys,
    Audit,
    Clients,
    Deliverables,
    Executions,
    Metrics,
    Notifications,
    Requests,
    Templates,
    Users,
    Webhooks,
)

if TYPE_CHECKING:
    from .config import FactoryConfig
    from .kam.notifier import Notifier

__all__ = ["Factory", "Session"]


class Session:
    """A logged-in view of the factory (sync): the operations this user may call, grouped
    as `clients`, `users`, `api_keys`, `requests`, `templates`, `executions`,
    `deliverables`, `notifications`, `audit` and `webhooks`."""

    def __init__(self, portal: BlockingPortal, session: AsyncSession) -> None:
        self._portal = portal
        self._async = session
        self.user: User = session.user
        self.context: dict[str, Any] = session.context
        self.clients = Clients(portal, session.clients)
        self.users = Users(portal, session.users)
        self.api_keys = ApiKeys(portal, session.api_keys)
        self.requests = Requests(portal, session.requests)
        self.templates = Templates(portal, session.templates)
        self.executions = Executions(portal, session.executions)
        self.deliverables = Deliverables(portal, session.deliverables)
        self.notifications = Notifications(portal, session.notifications)
        self.audit = Audit(portal, session.audit)
        self.webhooks = Webhooks(portal, session.webhooks)
        self.metrics = Metrics(portal, session.metrics)

    @property
    def token(self) -> str:
        """The session token (a secret: keep it out of logs)."""
        return self._async.token

    def logout(self) -> None:
        """End this session; its token stops working."""
        self._portal.call(self._async.logout)

    def change_password(self, old_password: str, new_password: str) -> None:
        """Change your own password: give the current one; the new one is 12 to 1024
        characters. Your other sessions end; this one stays. Raises `AuthenticationError`
        (the current password is wrong), `BadInputError`."""
        self._portal.call(self._async.change_password, old_password, new_password)

    def __repr__(self) -> str:
        return f"<Session {self.user.email} ({self.user.role.value})>"


# Factories not closed yet. Their event loop runs in a portal thread that the interpreter
# waits for at exit, so a script or notebook that forgot `close()` would hang there; they are
# closed (background executions stopped, resumable) just before that wait instead.
_OPEN: set[ExitStack] = set()
_OPEN_LOCK = threading.Lock()


def _close_forgotten() -> None:
    while True:
        with _OPEN_LOCK:
            if not _OPEN:
                return
            stack = _OPEN.pop()
        with contextlib.suppress(Exception):
            stack.close()


# `threading._register_atexit` runs before the interpreter joins non-daemon threads (it is
# how concurrent.futures stops its workers); `atexit` would run only after that join.
getattr(threading, "_register_atexit", atexit.register)(_close_forgotten)


class Factory:
    """The synchronous client. `aifactory.embedded()` makes one; close it (or use `with`).

    One left open is closed when the interpreter exits.
    """

    def __init__(self, factory: AsyncFactory, backend: str = "asyncio") -> None:
        self._stack = ExitStack()
        self._portal = self._stack.enter_context(start_blocking_portal(backend))
        try:
            self._async = self._stack.enter_context(
                self._portal.wrap_async_context_manager(factory)
            )
        except BaseException:
            self._stack.close()
            raise
        with _OPEN_LOCK:
            _OPEN.add(self._stack)

    @classmethod
    def embedded(
        cls,
        home: str | Path | None = None,
        *,
        config: FactoryConfig | None = None,
        notifier: Notifier | None = None,
        backend: str = "asyncio",
    ) -> Factory:
        """A factory running in this process (see `AsyncFactory.embedded`)."""
        return cls(AsyncFactory.embedded(home, config=config, notifier=notifier), backend)

    @classmethod
    def connect(
        cls,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        backend: str = "asyncio",
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> Factory:
        """A client for a remote factory's HTTP API (see `AsyncFactory.connect`, also for
        `ca_bundle`)."""
        remote = AsyncFactory.connect(base_url, api_key=api_key, token=token, ca_bundle=ca_bundle)
        return cls(remote, backend)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop background executions (resumable later) and release the factory."""
        with _OPEN_LOCK:
            _OPEN.discard(self._stack)
        self._stack.close()

    def bootstrap_admin(self, email: str, password: str | None = None) -> str:
        """Create the first admin; returns its password. Raises `ConflictError` once one exists."""
        return self._portal.call(self._async.bootstrap_admin, email, password)

    def login(self, username: str, password: str, login_type: str = "client") -> Session:
        """Log in; `login_type` is `client` or `admin`. Raises `AuthenticationError`."""
        session = self._portal.call(self._async.login, username, password, login_type)
        return Session(self._portal, session)

    def session(self, token: str | None = None) -> Session:
        """A view for a session token or API key (default: the one given to `connect`).

        Raises `AuthenticationError`.
        """
        return Session(self._portal, self._portal.call(self._async.session, token))
