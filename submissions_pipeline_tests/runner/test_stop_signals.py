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
import threading
import time

import psutil
import pytest
from dagster import raise_execution_interrupts

from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.runner import BrowserSettings, run_batch
from submissions_pipeline.runner.interrupts import run_until_stopped
from submissions_pipeline_tests.factories import make_case, quick_config


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


def test_a_batch_stopped_in_the_browser_claims_nothing_more_and_closes_its_browser(
    runner_deps, sandbox
):
    sandbox.configure("northwind", search_latency_s=1.0)
    store = runner_deps.store
    ids = [store.enqueue(make_case(n)).job_id for n in range(3)]

    def stop_once_a_job_is_in_the_browser() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            leased = [j for j in store.list_jobs() if j.state in LEASED_STATES]
            if any(j.last_step not in (None, "claimed") for j in leased):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    threading.Thread(target=stop_once_a_job_is_in_the_browser, daemon=True).start()
    one_context = BrowserSettings(context_cap=1, prewarm=False)
    with raise_execution_interrupts(), pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        run_batch(quick_config(oem="northwind", browser=one_context), runner_deps)

    states = sorted(store.get(i).state.value for i in ids)
    assert states.count(S.QUEUED.value) == 2  # never claimed
    (stopped,) = [store.get(i) for i in ids if store.get(i).state is not S.QUEUED]
    assert stopped.state in LEASED_STATES  # the caller gives it back (launcher, reaper)
    assert sandbox.ledger("northwind") == []
    browsers = [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name()]
    assert browsers == []
