"""The seams between the client and the factory, and between the orchestrator and workers."""

from .http_workers import HttpWorkerTransport, Traffic
from .workers import InProcessWorkerTransport, WorkerTransport

__all__ = ["HttpWorkerTransport", "InProcessWorkerTransport", "Traffic", "WorkerTransport"]
