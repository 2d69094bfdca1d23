"""What every resource group stands on: the async base (a session and its transport) and
the sync base (the same calls, run through the facade's blocking portal)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from ..client import AsyncSession

__all__ = ["AsyncResource", "SyncResource"]

T = TypeVar("T")
A = TypeVar("A", bound="AsyncResource")


class AsyncResource:
    """A group of operations bound to one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _call(self, operation: str, /, **arguments: Any) -> Any:
        return await self._session._transport.call(operation, self._session.token, **arguments)


class SyncResource(Generic[A]):
    """The blocking twin of an async resource group: each call runs on the facade's event
    loop (an anyio blocking portal) and returns what the async call returns."""

    def __init__(self, portal: BlockingPortal, target: A) -> None:
        self._portal = portal
        self._target = target

    def _run(self, method: Callable[..., Awaitable[T]], /, **arguments: Any) -> T:
        return self._portal.call(functools.partial(method, **arguments))

    def _iterate(self, method: Callable[..., AsyncIterator[T]], /, **arguments: Any) -> Iterator[T]:
        agen = method(**arguments)
        try:
            while True:
                try:
                    yield self._portal.call(agen.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(agen, "aclose", None)  # an async generator's: end it on its loop
            if close is not None:
                self._portal.call(close)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._target._session!r}>"
