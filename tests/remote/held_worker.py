"""A worker service whose stages a test can hold in flight; see test_service_crash.py.

`python -m tests.remote.held_worker HOME PORT TRUST [DELAY_S]` serves the content granulator and the
report builder as `aifactory serve worker` does (the same `worker_service`, the same blobs
under HOME), with two hooks for tests that kill services mid-stage:

- each call appends `EXECUTION STAGE ATTEMPT` to `HOME/worker-calls.txt` (fsync'd) before it
  works, so the test knows which stages reached a worker, and how often;
- while the file `HOME/hold` exists and names the call's stage, the call waits: the stage is
  in flight for as long as the test needs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import attrs
import uvicorn

from aifactory import FactoryConfig
from aifactory.server.deploy import load_keys, worker_service
from aifactory.workers import ContentGranulator, ReportBuilder, Worker, WorkerContext
from tests.orchestrator.crash_child import Counting

CALLS = "worker-calls.txt"
HOLD = "hold"


class Held(Counting):
    """Wraps a worker: records each call, and waits while the hold file names its stage."""

    def __init__(self, inner: Worker, home: Path, delay_s: float = 0.0) -> None:
        super().__init__(inner, home / CALLS)
        self.home = home
        self.delay_s = delay_s

    def line(self, ctx: WorkerContext) -> str:
        """What a call records: `EXECUTION STAGE ATTEMPT`."""
        return f"{ctx.execution_id} {super().line(ctx)}"

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> Any:
        self.record(ctx)  # before holding: the test learns the stage reached a worker
        hold = self.home / HOLD
        with anyio.move_on_after(60):  # a test that forgot to release it fails, not hangs
            # Another process lifts the hold, by deleting a file: nothing to wait on but time.
            while hold.exists() and hold.read_text().strip() == ctx.stage_id:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        await anyio.sleep(self.delay_s)  # work that takes time: a kill may land in it
        return await self.inner.process(action, inputs, params, ctx)


def main(home: Path, port: int, trust: Path, delay_s: float = 0.0) -> None:
    workers = [Held(ContentGranulator(), home, delay_s), Held(ReportBuilder(), home, delay_s)]
    # Blob storage from the environment, as `aifactory serve` takes it (AIFACTORY_STORAGE).
    config = attrs.evolve(FactoryConfig.from_environment(home), workers=workers)
    app = worker_service(config, [w.info.name for w in workers], load_keys(trust))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    main(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), delay)
