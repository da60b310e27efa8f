"""Per-step timing and hard budgets: every step is timed, and one over its budget fails fast."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from pydantic import BaseModel

from submissions_pipeline.runner.config import StepBudgets


class StepTiming(BaseModel):
    """How long one step of one attempt took, and whether it finished."""

    step: str
    seconds: float
    ok: bool
    #: CPU seconds the worker spent in the step, when it is given a CPU clock (the benchmark).
    cpu_s: float | None = None


class StepClock:
    """Times the steps of one attempt and enforces their hard timeouts."""

    def __init__(self, budgets: StepBudgets, cpu_clock: Callable[[], float] | None = None):
        self.budgets = budgets
        self.cpu_clock = cpu_clock
        self.timings: list[StepTiming] = []
        self.current: str | None = None
        self.started = time.perf_counter()

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        """Run the body as step `name` under its hard timeout (asyncio.TimeoutError past it)."""
        self.current = name
        cpu = self.cpu_clock
        c0 = cpu() if cpu is not None else None
        t0 = time.perf_counter()
        ok = False
        try:
            async with asyncio.timeout(self.budgets.for_step(name)):
                yield
            ok = True
        finally:
            seconds = time.perf_counter() - t0
            cpu_s = cpu() - c0 if cpu is not None and c0 is not None else None
            self.timings.append(StepTiming(step=name, seconds=seconds, ok=ok, cpu_s=cpu_s))

    @property
    def elapsed_s(self) -> float:
        """Seconds since the attempt started."""
        return time.perf_counter() - self.started
