"""The worker registry: which endpoints serve which worker."""

from __future__ import annotations

from collections.abc import Iterable

from .._exceptions import WorkerError
from ..transports.workers import WorkerTransport
from ..workers.base import check_worker_name

__all__ = ["WorkerRegistry"]


class WorkerRegistry:
    """Worker name → the endpoints (transports) that serve it, tried in turn."""

    def __init__(self, endpoints: Iterable[WorkerTransport] = ()) -> None:
        self._endpoints: dict[str, list[WorkerTransport]] = {}
        self._turn: dict[str, int] = {}
        for endpoint in endpoints:
            self.add(endpoint)

    def add(self, endpoint: WorkerTransport) -> None:
        """Register an endpoint under its worker's name."""
        self._endpoints.setdefault(check_worker_name(endpoint.worker), []).append(endpoint)

    def names(self) -> set[str]:
        """Names of the workers with at least one endpoint."""
        return set(self._endpoints)

    def require(self, names: Iterable[str]) -> None:
        """Raise `WorkerError` naming every worker in `names` that has no endpoint."""
        missing = sorted(set(names) - self.names())
        if missing:
            raise WorkerError(
                f"no worker registered for {', '.join(missing)}",
                details={"missing_workers": missing},
            )

    def candidates(self, name: str) -> list[WorkerTransport]:
        """The endpoints for `name`, rotated so consecutive stages spread over them."""
        endpoints = self._endpoints.get(name, [])
        if not endpoints:
            return []
        turn = self._turn.get(name, 0) % len(endpoints)
        self._turn[name] = turn + 1
        return endpoints[turn:] + endpoints[:turn]

    async def aclose(self) -> None:
        """Close every endpoint."""
        for endpoints in self._endpoints.values():
            for endpoint in endpoints:
                await endpoint.aclose()
