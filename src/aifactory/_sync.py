"""`Factory`: the synchronous facade over `AsyncFactory`, through an anyio blocking portal.

The portal runs an event loop in its own thread, so these calls work from plain scripts and
from inside a running event loop (a Jupyter cell) alike. There are no hand-written sync
twins: `SyncView` turns every coroutine method of the async object it wraps into a blocking
call, every async iterator into a plain iterator, and nested views into sync views.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from .client import AsyncFactory, AsyncSession, _Group
from .config import FactoryConfig
from .kam.notifier import Notifier

__all__ = ["Factory", "Session", "SyncView"]


class SyncView:
    """Blocking access to an async object's coroutine methods and async iterators."""

    def __init__(self, portal: BlockingPortal, target: Any) -> None:
        self._portal = portal
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if isinstance(attr, _Group):
            return SyncView(self._portal, attr)
        if inspect.isasyncgenfunction(attr):
            return functools.wraps(attr)(functools.partial(self._iterate, attr))
        if inspect.iscoroutinefunction(attr):
            return functools.wraps(attr)(functools.partial(self._run, attr))
        return attr

    def _run(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._portal.call(functools.partial(method, *args, **kwargs))

    def _iterate(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
        agen = method(*args, **kwargs)
        try:
            while True:
                try:
                    yield self._portal.call(agen.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            self._portal.call(agen.aclose)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._target)) - {n for n in dir(self._target) if n.startswith("_")})

    def __repr__(self) -> str:
        return f"<sync {self._target!r}>"


class Session(SyncView):
    """A logged-in view (sync): `clients`, `users`, `requests`, `templates`, `executions`,
    `deliverables`, `notifications`, `audit`, and `logout()`."""

    _target: AsyncSession

    @property
    def token(self) -> str:
        """The session token (a secret: keep it out of logs)."""
        return self._target.token


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
    ) -> Factory:
        """A client for a remote factory's HTTP API (see `AsyncFactory.connect`)."""
        return cls(AsyncFactory.connect(base_url, api_key=api_key, token=token), backend)

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
