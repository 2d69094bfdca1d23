"""The seams between the client and the factory, and between the orchestrator and workers."""

from .workers import InProcessWorkerTransport, WorkerTransport

__all__ = ["InProcessWorkerTransport", "WorkerTransport"]
