"""A stop signal stops the whole batch, wherever in the event loop it lands.

Dagster raises its interrupt wherever the main thread is when SIGTERM arrives. Inside an event
loop that can be one task whose cleanup swallows it; the batch then went on and a run told to
stop finished its night. These tests land the signal inside exactly such a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import pytest
from dagster import raise_execution_interrupts

from submissions_pipeline.runner.interrupts import run_until_stopped


async def _a_batch(log: list[str]) -> str:
    """Two attempts; the first one's heartbeat swallows everything, as cleanup code does."""

    async def heartbeat() -> None:
        with contextlib.suppress(BaseException):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside this task
            await asyncio.sleep(0)
        log.append("heartbeat ended")

    async def attempt(name: str) -> None:
        try:
            await asyncio.sleep(0.3)
            log.append(f"{name} finished")
        finally:
            log.append(f"{name} cleaned up")

    beat = asyncio.create_task(heartbeat())
    await asyncio.gather(attempt("first"), attempt("second"))
    await beat
    return "night finished"


def test_a_sigterm_inside_a_task_that_swallows_it_still_stops_the_batch():
    log: list[str] = []
    with raise_execution_interrupts():  # Dagster's handler, as inside a running step
        dagster_handler = signal.getsignal(signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            run_until_stopped(_a_batch(log))
        assert signal.getsignal(signal.SIGTERM) is dagster_handler
        assert signal.getsignal(signal.SIGINT) is dagster_handler
    assert "first finished" not in log and "second finished" not in log
    assert {"first cleaned up", "second cleaned up"} <= set(log)


def test_a_batch_that_is_not_stopped_returns_its_result_and_leaves_the_handlers_as_they_were():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    async def quiet() -> str:
        await asyncio.sleep(0.01)
        return "night finished"

    assert run_until_stopped(quiet()) == "night finished"
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_ctrl_c_from_a_terminal_stops_the_batch_too():
    log: list[str] = []

    async def interrupted() -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(5)
            log.append("slept on")
        finally:
            log.append("cleaned up")

    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        run_until_stopped(interrupted())
    assert log == ["cleaned up"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
