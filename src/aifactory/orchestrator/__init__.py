"""The orchestrator: pure planning, and an async runner that carries it out durably."""

from .._retry import RetryPolicy
from .costing import StoragePrices
from .registry import WorkerRegistry
from .runner import Orchestrator
from .sink import Artifact, ExecutionControl, ExecutionReport, ExecutionSink, LocalControl

__all__ = [
    "Artifact",
    "ExecutionControl",
    "ExecutionReport",
    "ExecutionSink",
    "LocalControl",
    "Orchestrator",
    "RetryPolicy",
    "StoragePrices",
    "WorkerRegistry",
]
