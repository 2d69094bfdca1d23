"""Password hashing off the event loop, a few at a time.

An Argon2 hash or verification takes tens of milliseconds of CPU and tens of MiB of memory by
design. On the event loop, a handful of clients sending bad logins would stall every other
request; in unbounded threads, a flood of them would take all the memory. So each runs in
a worker thread (argon2-cffi releases the GIL while it works), at most `limit` at once; the
rest wait their turn without holding up anything else.
"""

from __future__ import annotations

from collections import OrderedDict

import anyio
import anyio.to_thread
from anyio.lowlevel import EventLoopToken, current_token

from ..auth import PasswordHasher

__all__ = ["HASHING_THREADS", "OffLoopHashing"]

#: How many hashes or verifications run at once by default.
HASHING_THREADS = 2
_LOOPS_KEPT = 8


class OffLoopHashing:
    """`PasswordHasher`'s hash, verify and burn, each in a worker thread, at most `limit`
    at once (per instance)."""

    def __init__(self, hasher: PasswordHasher, limit: int = HASHING_THREADS) -> None:
        self.hasher = hasher
        self._limit = limit
        # A limiter belongs to one event loop, and a factory may be used from more than one
        # (a notebook's, a server's thread): one each, made on first use there.
        self._limiters: OrderedDict[EventLoopToken, anyio.CapacityLimiter] = OrderedDict()

    def _slots(self) -> anyio.CapacityLimiter:
        loop = current_token()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(self._limit)
            while len(self._limiters) > _LOOPS_KEPT:
                self._limiters.popitem(last=False)
        return limiter

    async def hash(self, password: str) -> str:
        """`PasswordHasher.hash`. Raises `BadInputError` for a password too short or long."""
        return await anyio.to_thread.run_sync(self.hasher.hash, password, limiter=self._slots())

    async def verify(self, stored_hash: str, password: str) -> bool:
        """`PasswordHasher.verify` (never raises on a mismatch)."""
        return await anyio.to_thread.run_sync(
            self.hasher.verify, stored_hash, password, limiter=self._slots()
        )

    async def burn(self, password: str) -> None:
        """`PasswordHasher.burn`: one verification's time, for an unknown user."""
        await anyio.to_thread.run_sync(self.hasher.burn, password, limiter=self._slots())
