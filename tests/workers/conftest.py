"""Fixtures for worker tests: a real `WorkerContext` whose artifacts land in a dict."""

from __future__ import annotations

import pytest

from aifactory._clock import ManualClock
from aifactory.models import StorageRef
from aifactory.workers.base import WorkerContext


class ArtifactShelf:
    """Where a test context stores artifacts (by name) and records progress reports."""

    def __init__(self) -> None:
        self.artifacts: dict[str, tuple[bytes, str]] = {}
        self.progress: list[tuple[float, str]] = []

    def write(self, data: bytes, name: str, media_type: str) -> StorageRef:
        self.artifacts[name] = (data, media_type)
        return StorageRef.inline(data, media_type)

    async def report(self, percent: float, message: str) -> None:
        self.progress.append((percent, message))

    def context(self) -> WorkerContext:
        return WorkerContext(
            execution_id="exec_000001",
            stage_id="stage_1",
            attempt=1,
            idempotency_key="idem-1",
            clock=ManualClock(),
            write_artifact=self.write,
            report_progress=self.report,
        )


@pytest.fixture
def shelf() -> ArtifactShelf:
    return ArtifactShelf()
