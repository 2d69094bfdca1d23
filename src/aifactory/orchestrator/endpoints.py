"""Worker endpoints as the orchestrator sees them: the `WorkerTransport` protocol (the seam
between the engine and where workers run) and the in-process endpoint. The HTTP endpoint,
`transports.HttpWorkerTransport`, implements the same protocol from above the engine."""

from __future__ import annotations

from typing import Protocol

from ..protocol.messages import (
    AcknowledgeReply,
    AcknowledgeRequest,
    HandshakeReply,
    HandshakeRequest,
    ProcessReply,
    ProcessRequest,
    WorkerHealth,
)
from ..workers.base import ProgressCallback
from ..workers.host import WorkerHost

__all__ = ["InProcessWorkerTransport", "WorkerTransport"]


class WorkerTransport(Protocol):
    """How the orchestrator talks to one worker endpoint: the three protocol calls and health."""

    @property
    def worker(self) -> str:
        """The canonical name of the worker behind this endpoint."""
        ...

    @property
    def local(self) -> bool:
        """Whether calls stay in this process (cheap: the orchestrator awaits an acknowledge
        in line rather than sending it alongside the next stage's calls)."""
        ...

    async def handshake(self, request: HandshakeRequest) -> HandshakeReply:
        """May I give you this work?"""
        ...

    async def process(
        self, request: ProcessRequest, on_progress: ProgressCallback | None = None
    ) -> ProcessReply:
        """Do the work you accepted; `on_progress` receives the worker's heartbeats."""
        ...

    async def acknowledge(self, request: AcknowledgeRequest) -> AcknowledgeReply:
        """I have your output; the stage is committed."""
        ...

    async def health(self) -> WorkerHealth:
        """Whether the worker takes work, and its free slots."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class InProcessWorkerTransport:
    """Calls a `WorkerHost` in the same process: no copies, no serialisation."""

    def __init__(self, host: WorkerHost) -> None:
        self._host = host

    @property
    def worker(self) -> str:
        """The hosted worker's name."""
        return self._host.name

    @property
    def local(self) -> bool:
        """Always: the host is in this process."""
        return True

    async def handshake(self, request: HandshakeRequest) -> HandshakeReply:
        """Forward to the host."""
        return await self._host.handshake(request)

    async def process(
        self, request: ProcessRequest, on_progress: ProgressCallback | None = None
    ) -> ProcessReply:
        """Forward to the host."""
        return await self._host.process(request, on_progress)

    async def acknowledge(self, request: AcknowledgeRequest) -> AcknowledgeReply:
        """Forward to the host."""
        return await self._host.acknowledge(request)

    async def health(self) -> WorkerHealth:
        """Forward to the host."""
        return self._host.health()

    async def aclose(self) -> None:
        """Nothing to release."""
