"""Per-step timing and hard budgets: every step is timed, and one over its budget fails fast."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import BaseModel

from submissions_pipeline.runner.config import StepBudgets


class StepTiming(BaseModel):
    """How long one step of one attempt took, and whether it finished."""

    step: str
    seconds: float
    ok: bool


class StepClock:
    """Times the steps of one attempt and enforces their hard timeouts."""

    def __init__(self, budgets: StepBudgets):
        self.budgets = budgets
        self.timings: list[StepTiming] = []
        self.current: str | None = None
        self.started = time.perf_counter()

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        """Run the body as step `name` under its hard timeout (asyncio.TimeoutError past it)."""
        self.current = name
        t0 = time.perf_counter()
        ok = False
        try:
            async with asyncio.timeout(self.budgets.for_step(name)):
                yield
            ok = True
        finally:
            self.timings.append(StepTiming(step=name, seconds=time.perf_counter() - t0, ok=ok))

    @property
    def elapsed_s(self) -> float:
        """Seconds since the attempt started."""
        return time.perf_counter() - self.started
