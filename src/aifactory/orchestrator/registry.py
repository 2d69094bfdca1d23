"""The worker registry: which endpoints serve which worker, and which of them can take work.

Each endpoint's health (`/health`: healthy, free slots, capabilities) is cached for
`health_ttl_s` (5 minutes, as the seed specifies); an endpoint that could not be reached or
timed out stays out of rotation for `retry_unhealthy_s`, then is checked again. Candidates
for a stage are the healthy endpoints, those with free slots first, rotating among equals so
load spreads. The registry remembers when each endpoint last answered and how often it
could not be reached, for the staff's view (`status`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import anyio
import attrs

from .._clock import Clock, SystemClock
from .._exceptions import AIFactoryError, WorkerError
from ..models import WorkerStatus
from ..protocol.messages import WorkerHealth
from ..workers.base import check_worker_name
from .endpoints import WorkerTransport

__all__ = ["WorkerRegistry"]


@attrs.define
class _Entry:
    endpoint: WorkerTransport
    health: WorkerHealth | None = None
    checked_at: float = float("-inf")
    down_until: float = float("-inf")
    seen: datetime | None = None
    failures: int = 0
    failed: datetime | None = None


class WorkerRegistry:
    """Worker name → the endpoints (transports) that serve it. `clock` dates when each
    endpoint was last seen and last failed."""

    def __init__(
        self,
        endpoints: Iterable[WorkerTransport] = (),
        health_ttl_s: float = 300.0,
        retry_unhealthy_s: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self._entries: dict[str, list[_Entry]] = {}
        self._by_endpoint: dict[int, _Entry] = {}
        self._turn: dict[str, int] = {}
        self.health_ttl_s = health_ttl_s
        self.retry_unhealthy_s = retry_unhealthy_s
        self.clock: Clock = clock or SystemClock()
        for endpoint in endpoints:
            self.add(endpoint)

    def add(self, endpoint: WorkerTransport) -> None:
        """Register an endpoint under its worker's name."""
        entry = _Entry(endpoint)
        self._entries.setdefault(check_worker_name(endpoint.worker), []).append(entry)
        self._by_endpoint[id(endpoint)] = entry

    def seen(self, endpoint: WorkerTransport) -> None:
        """Note that `endpoint` answered (a handshake, whatever it said)."""
        entry = self._by_endpoint.get(id(endpoint))
        if entry is not None:
            entry.seen = self.clock.now()

    def _failed(self, entry: _Entry, now: float) -> None:
        entry.health = None
        entry.down_until = now + self.retry_unhealthy_s
        entry.failures += 1
        entry.failed = self.clock.now()

    def names(self) -> set[str]:
        """Names of the workers with at least one endpoint."""
        return set(self._entries)

    def require(self, names: Iterable[str]) -> None:
        """Raise `WorkerError` naming every worker in `names` that has no endpoint."""
        missing = sorted(set(names) - self.names())
        if missing:
            raise WorkerError(
                f"no worker registered for {', '.join(missing)}",
                details={"missing_workers": missing},
            )

    async def _health(self, entry: _Entry) -> WorkerHealth | None:
        now = anyio.current_time()
        if now < entry.down_until:
            return None
        if entry.health is None or now - entry.checked_at >= self.health_ttl_s:
            try:
                entry.health = await entry.endpoint.health()
                entry.seen = self.clock.now()
            except AIFactoryError:
                self._failed(entry, now)
            entry.checked_at = now
        return entry.health if entry.health is not None and entry.health.healthy else None

    def mark_unhealthy(self, endpoint: WorkerTransport) -> None:
        """Take an endpoint that could not be reached out of rotation for
        `retry_unhealthy_s`, then check it again."""
        entry = self._by_endpoint.get(id(endpoint))
        if entry is not None:
            self._failed(entry, anyio.current_time())

    async def candidates(
        self, name: str, avoid: Iterable[WorkerTransport] = ()
    ) -> list[WorkerTransport]:
        """Healthy endpoints for `name`, free slots first; `avoid` ones go last.

        Slot counts come from the cached health, so they are hints: the handshake decides.
        """
        entries = self._entries.get(name, [])
        turn = self._turn.get(name, 0)
        self._turn[name] = turn + 1
        rotated = entries[turn % len(entries) :] + entries[: turn % len(entries)] if entries else []
        avoided = {id(e) for e in avoid}
        ranked: list[tuple[int, int, int, WorkerTransport]] = []
        for index, entry in enumerate(rotated):
            health = await self._health(entry)
            if health is None:
                continue
            ranked.append(
                (id(entry.endpoint) in avoided, health.slots_free <= 0, index, entry.endpoint)
            )
        return [endpoint for *_, endpoint in sorted(ranked, key=lambda r: r[:3])]

    async def cacheable(self, name: str) -> tuple[bool, str]:
        """Whether `name`'s output may be cached, and its version (for the cache key)."""
        for entry in self._entries.get(name, []):
            health = await self._health(entry)
            if health is not None:
                return health.cacheable, health.version
        return False, ""

    def known_cacheable(self, name: str) -> tuple[bool, str] | None:
        """What `cacheable` would answer, if it can be told from cached health alone; None
        when an endpoint's health would have to be checked first."""
        now = anyio.current_time()
        for entry in self._entries.get(name, []):
            if now < entry.down_until:
                continue
            if entry.health is None or now - entry.checked_at >= self.health_ttl_s:
                return None
            if entry.health.healthy:
                return entry.health.cacheable, entry.health.version
        return False, ""

    async def status(self) -> list[WorkerStatus]:
        """Every endpoint as rotation sees it, by worker name: its health as last checked
        (an endpoint whose check has aged past `health_ttl_s` is checked now; one out of
        rotation stays `unreachable` until its retry time)."""
        found = []
        for name in sorted(self._entries):
            for entry in self._entries[name]:
                await self._health(entry)
                health = entry.health
                local = entry.endpoint.local
                if health is None:
                    status = WorkerStatus(name, "unreachable", local)
                    found.append(self._with_history(status, entry))
                    continue
                state = "unhealthy" if not health.healthy else "ready"
                if health.healthy and health.slots_free <= 0:
                    state = "busy"
                status = WorkerStatus(
                    name,
                    state,
                    local,
                    health.slots_total,
                    health.slots_free,
                    tuple(health.capabilities),
                    health.version,
                )
                found.append(self._with_history(status, entry))
        return found

    @staticmethod
    def _with_history(status: WorkerStatus, entry: _Entry) -> WorkerStatus:
        """`status` with when its endpoint was last seen and how often it failed."""
        return attrs.evolve(
            status, last_seen=entry.seen, failures=entry.failures, last_failure=entry.failed
        )

    async def aclose(self) -> None:
        """Close every endpoint."""
        for entries in self._entries.values():
            for entry in entries:
                await entry.endpoint.aclose()
