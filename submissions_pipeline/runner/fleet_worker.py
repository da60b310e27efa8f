"""The disposable fleet worker: one browser across polls, probes and metrics, drain on SIGTERM.

`submissions worker` runs it. It keeps one Chromium for its whole life (relaunched by job count,
memory or crash), pulls due jobs with its context cap, reaps expired leases between polls, and on
SIGTERM stops claiming, lets in-flight attempts finish within `drain_grace_s`, gives the rest
back (before the submit click to the queue, after it to reconciliation: the reaper's rules) and
returns, so the process exits 0 and nothing stays leased to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from datetime import UTC, datetime

import psutil
from pydantic import BaseModel, Field

from submissions_pipeline.domain.fleet import (
    Backlog,
    desired_workers,
    fleet_concurrency,
    seconds_until_business_hours,
)
from submissions_pipeline.domain.oem import OemSettings
from submissions_pipeline.runner.batch import BatchReport, new_worker_id, pull_jobs
from submissions_pipeline.runner.browser import BrowserWorker
from submissions_pipeline.runner.config import BatchConfig
from submissions_pipeline.runner.deps import RunnerDeps
from submissions_pipeline.runner.job import JobOutcome
from submissions_pipeline.runner.worker_health import HealthServer, WorkerHealth, WorkerMetrics
from submissions_pipeline.store import JobStore

log = logging.getLogger(__name__)


class WorkerSettings(BaseModel):
    """How a fleet worker lives and dies (CLI options and SUBMISSIONS_WORKER_* settings)."""

    poll_s: float = Field(15.0, gt=0, description="Sleep between polls that found nothing.")
    drain_grace_s: float = Field(
        90.0, ge=0, description="After SIGTERM, how long in-flight attempts may finish."
    )
    memory_limit_mb: float | None = Field(
        1500.0, gt=0, description="Relaunch the browser when its process tree's PSS passes this."
    )
    memory_check_s: float = Field(5.0, gt=0, description="How often the PSS is measured.")
    stall_s: float = Field(120.0, gt=0, description="/healthz fails after this long silent.")
    host: str = Field("127.0.0.1", description="Where the probes listen (0.0.0.0 in a pod).")
    port: int = Field(9464, ge=0, le=65535, description="Probe and metrics port (0: any free).")
    once: bool = Field(False, description="Stop when a poll finds nothing (scripts, tests).")


class WorkerSummary(BaseModel):
    """What the worker did, printed when it exits."""

    worker_id: str
    attempts: int = 0
    browser_launches: int = 0
    memory_relaunches: int = 0
    released: list[str] = Field(default_factory=list)
    stop_reason: str = ""


#: Descendants that are not the browser: Playwright's driver.
_NOT_BROWSER = frozenset({"node"})


def browser_tree_pss() -> int:
    """PSS (bytes) of this process's descendants except Playwright's driver: the browser tree."""
    total = 0
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if proc.name() in _NOT_BROWSER:
                continue
            total += proc.memory_full_info().pss
    return total


class FleetWorker:
    """One worker process of the fleet; `run()` until SIGTERM (or a dry queue with `once`)."""

    def __init__(self, cfg: BatchConfig, deps: RunnerDeps, settings: WorkerSettings):
        self.worker_id = cfg.worker_id or new_worker_id()
        self.cfg = cfg.model_copy(update={"worker_id": self.worker_id})
        self.deps = deps
        self.settings = settings
        self.metrics = WorkerMetrics()
        self.health = WorkerHealth(settings.stall_s)
        self._stop = asyncio.Event()
        self.summary = WorkerSummary(worker_id=self.worker_id)
        deps.on_lease_renewed = self._lease_renewed

    # ------------------------------------------------------------------ signals
    def drain(self) -> None:
        """Stop claiming; in-flight attempts get the grace period (SIGTERM's handler)."""
        if not self._stop.is_set():
            log.info("%s: draining", self.worker_id)
            self._stop.set()
            self.health.draining = True
            self.metrics.draining.set(1)

    def _lease_renewed(self) -> None:
        self.metrics.lease_renewals.inc()
        self.health.store_answered()

    def _outcome(self, o: JobOutcome) -> None:
        self.summary.attempts += 1
        self.metrics.jobs.labels(o.oem, o.state.value).inc()
        self.metrics.job_seconds.labels(o.oem).observe(o.seconds)
        if o.reason_code is not None:
            self.metrics.failures.labels(o.oem, o.reason_code.value).inc()
        for step, seconds in o.step_seconds.items():
            self.metrics.step_seconds.labels(step).observe(seconds)
        self.health.store_answered()

    # ------------------------------------------------------------------ the loop
    async def run(self) -> WorkerSummary:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.drain)
        server = HealthServer(self.health, self.metrics, self.settings.host, self.settings.port)
        server.start()
        log.info("%s: probes and metrics on port %d", self.worker_id, server.port)
        try:
            async with BrowserWorker(
                self.cfg.browser,
                self.cfg.evidence,
                self.deps.home,
                block_hosts=self.deps.blocked_hosts(),
            ) as b:
                self.health.browser_up = True
                watchers = [
                    asyncio.ensure_future(self._tick(b)),
                    asyncio.ensure_future(self._watch_memory(b)),
                ]
                try:
                    await self._poll_until_stopped(b)
                finally:
                    for w in watchers:
                        w.cancel()
                    self.summary.browser_launches = b.launches
                    self.summary.memory_relaunches = b.memory_relaunches
        finally:
            server.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return self.summary

    async def _poll_until_stopped(self, browser: BrowserWorker) -> None:
        while not self._stop.is_set():
            reaped = await asyncio.to_thread(self.deps.store.reap_expired)
            self.health.store_answered()
            if reaped:
                log.info("%s: reaped %d expired lease(s)", self.worker_id, len(reaped))
            await asyncio.to_thread(self._export_desired)
            report = BatchReport(
                worker_id=self.worker_id,
                oem=self.cfg.oem,
                started_at=datetime.now(UTC),
                finished_at=datetime.now(UTC),
            )
            pull = asyncio.ensure_future(
                pull_jobs(
                    self.cfg,
                    self.deps,
                    browser,
                    report,
                    stop=self._stop.is_set,
                    on_outcome=self._outcome,
                )
            )
            stopped = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([pull, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not pull.done():
                await self._finish_in_flight(pull)
                return
            pull.result()
            self.health.store_answered()
            if not report.outcomes:
                if self.settings.once:
                    self.summary.stop_reason = "queue drained (once)"
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.settings.poll_s)
        self.summary.stop_reason = self.summary.stop_reason or "drained"

    async def _finish_in_flight(self, pull: asyncio.Future[None]) -> None:
        """Give in-flight attempts the grace period, then cut them off and give them back."""
        done, _ = await asyncio.wait([pull], timeout=self.settings.drain_grace_s)
        if not done:
            pull.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pull
        # Anything still leased to this worker goes back now, by the reaper's rules: the
        # submit-clicked milestone is written before the click, so the split is truthful.
        released = await asyncio.to_thread(
            self.deps.store.reap_expired,
            lease_owner=self.worker_id,
            actor=f"{self.worker_id} (drain)",
        )
        self.summary.released = [j.job_id for j in released]
        self.metrics.released.inc(len(released))
        self.summary.stop_reason = (
            f"drained: {len(released)} job(s) given back" if released else "drained"
        )

    async def _tick(self, browser: BrowserWorker) -> None:
        crashes = 0
        while True:
            self.health.tick()
            self.metrics.contexts_in_use.set(browser.contexts_in_use)
            self.metrics.browser_launches.set(browser.launches)
            if browser.crashes > crashes:  # relaunched after the browser died under a job
                self.metrics.browser_relaunches.labels("crash").inc(browser.crashes - crashes)
                crashes = browser.crashes
            await asyncio.sleep(0.5)

    async def _watch_memory(self, browser: BrowserWorker) -> None:
        limit = self.settings.memory_limit_mb
        while True:
            await asyncio.sleep(self.settings.memory_check_s)
            pss = await asyncio.to_thread(browser_tree_pss)
            self.metrics.browser_pss.set(pss)
            if limit is not None and pss > limit * 1024 * 1024:
                before = browser.memory_relaunches
                browser.request_relaunch()
                if browser.memory_relaunches > before:
                    self.metrics.browser_relaunches.labels("memory").inc()
                    log.warning(
                        "%s: browser PSS %.0f MB over the %.0f MB limit: relaunching it",
                        self.worker_id,
                        pss / 2**20,
                        limit,
                    )

    def _export_desired(self) -> None:
        """The policy's answer and the jobs at risk for each OEM this worker serves."""
        settings = {oem: adapter.settings for oem, adapter in self.deps.adapters.items()}
        export_queue_gauges(self.metrics, self.deps.store, settings, datetime.now(UTC))


def export_queue_gauges(
    metrics: WorkerMetrics, store: JobStore, oems: Mapping[str, OemSettings], now: datetime
) -> None:
    """Set each OEM's desired-workers and jobs-at-risk gauges from the queue as it is `now`.

    At risk is judged against the fleet the policy asks for (its contexts within the OEM's
    session cap), the size the autoscaler is moving to, so the two gauges tell one story.
    """
    for oem, settings in oems.items():
        st = store.stats(oem=oem, now=now)
        sched = settings.schedule
        backlog = Backlog(
            due=st.due_now,
            in_flight=st.running,
            p95_s=st.p95_job_s,
            seconds_left=seconds_until_business_hours(
                now, sched.business_hours_start, sched.timezone
            ),
            oem_cap=settings.concurrency.max_sessions,
        )
        workers = desired_workers(backlog, settings.fleet)
        metrics.desired_workers.labels(oem).set(workers)
        concurrency = fleet_concurrency(
            workers, settings.fleet.contexts_per_worker, settings.concurrency.max_sessions
        )
        p95 = st.p95_job_s or settings.fleet.default_p95_s
        risky = store.at_risk(oem, p95_s=p95, concurrency=concurrency, now=now)
        metrics.jobs_at_risk.labels(oem).set(len(risky))
