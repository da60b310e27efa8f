"""The worker pull loop: claim due jobs under the context cap and run them until done."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from random import Random

from pydantic import BaseModel, Field

from submissions_pipeline.runner.browser import BrowserWorker
from submissions_pipeline.runner.config import BatchConfig
from submissions_pipeline.runner.deps import RunnerDeps
from submissions_pipeline.runner.interrupts import run_until_stopped
from submissions_pipeline.runner.job import JobOutcome, SessionCache, process_job


class BatchReport(BaseModel):
    """What one worker's batch did, for logs, Dagster metadata and the CLI."""

    worker_id: str
    oem: str | None
    started_at: datetime
    finished_at: datetime
    outcomes: list[JobOutcome] = Field(default_factory=list)
    halted_oems: list[str] = Field(default_factory=list)
    stop_reason: str = "queue drained"
    due_at_start: int = 0
    browser_launches: int = 0
    browser_crashes: int = 0

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def new_worker_id() -> str:
    """host:pid:random, unique per worker and readable in the event history."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def run_batch_async(cfg: BatchConfig, deps: RunnerDeps) -> BatchReport:
    """Pull and run jobs until the queue is drained for this worker or a budget is spent.

    Each of `context_cap` slots claims one job at a time, so the worker never holds leases on
    work it cannot start (back-pressure from the queue). An auth failure halts that OEM for the
    rest of the batch: every further login would be rejected too.
    """
    worker_id = cfg.worker_id or new_worker_id()
    started = datetime.now(UTC)
    due = deps.store.stats(oem=cfg.oem).due_now
    report = BatchReport(
        worker_id=worker_id,
        oem=cfg.oem,
        started_at=started,
        finished_at=started,
        due_at_start=due,
    )
    if cfg.dry_run or cfg.max_jobs == 0:
        report.stop_reason = "dry run" if cfg.dry_run else "max_jobs is 0"
        report.finished_at = datetime.now(UTC)
        return report

    async with BrowserWorker(
        cfg.browser, cfg.evidence, deps.home, block_hosts=deps.blocked_hosts()
    ) as worker:
        await pull_jobs(cfg, deps, worker, report)
        report.browser_launches = worker.launches
        report.browser_crashes = worker.crashes
    report.finished_at = datetime.now(UTC)
    return report


async def pull_jobs(
    cfg: BatchConfig,
    deps: RunnerDeps,
    worker: BrowserWorker,
    report: BatchReport,
    *,
    stop: Callable[[], bool] = lambda: False,
    on_outcome: Callable[[JobOutcome], None] | None = None,
) -> None:
    """Each of `context_cap` slots claims and runs one job at a time on `worker`'s browser
    until the queue has nothing for it, a budget is spent or `stop()` says so (a draining
    fleet worker). Claims honour every OEM's fleet-wide caps (`oem.toml` [concurrency])."""
    worker_id = report.worker_id
    rng = Random(cfg.seed)
    sessions = SessionCache(cfg.browser.session_reuse_s)
    deadline = time.monotonic() + cfg.time_budget_s
    caps = {oem: a.settings.concurrency for oem, a in deps.adapters.items()}
    halted: set[str] = set(report.halted_oems)
    started_jobs = 0
    stop_reason = "queue drained"

    async def slot() -> None:
        nonlocal started_jobs, stop_reason
        while True:
            if stop():
                stop_reason = "stopped: draining"
                return
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                # A stop cancelled this slot and some cleanup swallowed it: claim nothing more.
                raise asyncio.CancelledError
            if started_jobs >= cfg.max_jobs:
                stop_reason = "max_jobs reached"
                return
            if time.monotonic() >= deadline:
                stop_reason = "time budget spent"
                return
            if cfg.oem is not None and cfg.oem in halted:
                stop_reason = f"halted: auth failure on {cfg.oem}"
                return
            started_jobs += 1
            claimed = await asyncio.to_thread(
                deps.store.claim,
                worker_id,
                oem=cfg.oem,
                limit=1,
                lease_s=cfg.lease_s,
                run_id=cfg.run_id,
                exclude_oems=sorted(halted),
                prefer_redaction_sensitive=cfg.prefer_redaction_sensitive,
                caps=caps,
            )
            if not claimed:
                started_jobs -= 1
                return
            outcome = await process_job(claimed[0], worker, deps, cfg, worker_id, sessions, rng)
            report.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            if outcome.halt_oem:
                halted.add(outcome.oem)

    await asyncio.gather(*(slot() for _ in range(cfg.browser.context_cap)))
    report.halted_oems = sorted(halted)
    report.stop_reason = stop_reason


def run_batch(cfg: BatchConfig, deps: RunnerDeps) -> BatchReport:
    """The one entry point Dagster ops and the CLI call: runs the async worker to completion,
    or until SIGTERM or SIGINT stops it as a whole (KeyboardInterrupt; leased jobs stay leased
    for the caller to give back)."""
    return run_until_stopped(run_batch_async(cfg, deps))
