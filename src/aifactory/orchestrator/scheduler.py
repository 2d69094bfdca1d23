"""`StageScheduler`: starts an execution's stages as their dependencies succeed.

Independent stages run side by side, at most `width` (the execution's `max_workers`) at a
time; a stage whose dependency failed or was skipped, or whose condition is false, is
skipped. A stage's commit may already have recorded the next stage's first attempt (see
`records.Records.prestart`): the stage's task then goes straight on with it, in its slot,
instead of handing it to a new task.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import anyio
import anyio.abc

from ..models import StageSpec
from . import planning
from .live import Live
from .records import StageWork
from .stages import StageRunner

__all__ = ["StageScheduler"]


class StageScheduler:
    """Runs the stages of live executions through a `StageRunner`."""

    def __init__(self, stages: StageRunner) -> None:
        self._stages = stages
        self.e = stages.e

    async def run(
        self, live: Live, width: int, first: Sequence[tuple[StageSpec, StageWork]] = ()
    ) -> None:
        """Run the execution's stages until none is left to start and none is in flight;
        `first`: stages whose first attempt the execution's start recorded."""
        await _Run(self, live, max(1, width)).run(first)

    async def skip(self, live: Live, stage: StageSpec, reason: str) -> None:
        """Record that `stage` will not run."""
        await self._stages.records.skip(live, stage, reason)
        self.e.touch(live.execution.id)


class _Run:
    """The scheduling state of one execution's run."""

    def __init__(self, scheduler: StageScheduler, live: Live, width: int) -> None:
        self.scheduler = scheduler
        self.live = live
        self.width = width
        self.running = 0  # stages in flight; new ones start only while fewer than `width`
        self.tg: anyio.abc.TaskGroup | None = None

    async def run(self, first: Sequence[tuple[StageSpec, StageWork]]) -> None:
        self.live.next_stage = self.live.first_ready
        try:
            async with anyio.create_task_group() as self.tg:
                self.live.alongside = self._alongside
                for stage, work in first:
                    self._spawn(stage, work)
                await self.schedule()
        finally:
            self.live.next_stage = self.live.alongside = None

    def _alongside(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        assert self.tg is not None
        self.tg.start_soon(work)

    def _spawn(self, stage: StageSpec, work: StageWork | None = None) -> None:
        assert self.tg is not None
        self.running += 1
        self.tg.start_soon(self.stage, stage, work, name=f"stage {stage.id}")

    async def stage(self, stage: StageSpec, work: StageWork | None) -> None:
        live = self.live
        try:
            while not live.stop:
                ready = await self.scheduler._stages.run(live, stage, work)
                if not ready:
                    break
                # The commit recorded the next stages' first attempts: this task goes on
                # with the first, in its slot; any others get tasks of their own.
                (stage, work), *others = ready
                for other, other_work in others:
                    self._spawn(other, other_work)
        finally:
            self.running -= 1
        await self.schedule()

    async def schedule(self) -> None:
        live, plan = self.live, self.live.plan
        while not live.stop:
            ready, blocked = planning.frontier(plan.template, live.statuses(), plan.deps)
            for stage in blocked:
                await self.scheduler.skip(live, stage, "a stage it depends on did not succeed")
            progressed = bool(blocked)
            for stage in ready:
                if stage.id in live.started or self.running >= self.width:
                    continue
                if planning.evaluate_condition(stage.condition, live.execution.parameters):
                    live.started.add(stage.id)
                    self._spawn(stage)
                else:
                    await self.scheduler.skip(
                        live, stage, f"condition {stage.condition!r} is false"
                    )
                    progressed = True
            if not progressed:
                return
