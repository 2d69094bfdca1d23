"""Timing shared by the benchmarks: seconds per run, one figure per repetition, after warm-up."""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class Runs(Protocol):
    """How many runs to time (`n` per repetition), how often, and how many to warm up with."""

    @property
    def n(self) -> int: ...
    @property
    def repeats(self) -> int: ...
    @property
    def warmup(self) -> int: ...


def time_sync(run: Callable[[], object], s: Runs) -> list[float]:
    """Seconds per call of `run`, one figure per repetition (garbage collected before each)."""
    for _ in range(s.warmup):
        run()
    figures = []
    for _ in range(s.repeats):
        gc.collect()
        start = time.perf_counter()
        for _ in range(s.n):
            run()
        figures.append((time.perf_counter() - start) / s.n)
    return figures


async def time_async(run: Callable[[], Awaitable[object]], s: Runs) -> list[float]:
    """`time_sync` for a coroutine function, on the running event loop."""
    for _ in range(s.warmup):
        await run()
    figures = []
    for _ in range(s.repeats):
        gc.collect()
        start = time.perf_counter()
        for _ in range(s.n):
            await run()
        figures.append((time.perf_counter() - start) / s.n)
    return figures
