"""Workers: the `Worker` base, the protocol host, and the built-in workers."""

from .base import Worker, WorkerContext, WorkerInfo, WorkerResult, check_worker_name
from .granulator import ContentGranulator
from .host import WorkerHost
from .report_builder import ReportBuilder

__all__ = [
    "ContentGranulator",
    "ReportBuilder",
    "Worker",
    "WorkerContext",
    "WorkerHost",
    "WorkerInfo",
    "WorkerResult",
    "builtin_workers",
    "check_worker_name",
]


def builtin_workers() -> list[Worker]:
    """A fresh instance of every built-in worker."""
    return [ContentGranulator(), ReportBuilder()]
