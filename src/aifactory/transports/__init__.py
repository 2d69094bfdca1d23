"""The seams between the client and the factory, and between the orchestrator and workers."""

from ..orchestrator.endpoints import InProcessWorkerTransport, WorkerTransport
from .http_workers import HttpWorkerTransport, Traffic

__all__ = ["HttpWorkerTransport", "InProcessWorkerTransport", "Traffic", "WorkerTransport"]
