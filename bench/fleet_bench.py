"""Fleet mode: throughput of 1, 2, 4 `submissions worker` processes on one PostgreSQL queue.

Each run gets a fresh database and a freshly reset, latency-bound sandbox portal (the VIN search
takes 5 s, no faults). The workers start first and the jobs are enqueued once every worker's
browser is up (`/readyz`), so the measured span, first claim to last job settled, holds only the
work a long-lived fleet does; the notes' formula (workers x contexts x 3600 / mean job s) sits
beside each measured rate. The portal's ledger must hold every case exactly once.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bench.cases import BENCH_OEM, bench_cases
from bench.fleet_models import FleetRun
from bench.pss import PssSampler, client_cpu_seconds
from bench.sandbox_process import SandboxProcess, stop_processes
from submissions_pipeline.domain import SETTLED_STATES, SubmissionState
from submissions_pipeline.domain.stats import percentile
from submissions_pipeline.settings import exported_environment

if TYPE_CHECKING:
    from bench.harness import BenchPlan
    from bench.report import BenchReport

Echo = Callable[[str], None]

ROOT = Path(__file__).resolve().parents[1]

#: States a worker is done with: evidence stored (the nightly run's CRM update comes later, and
#: no worker does it) or settled one way or another.
DONE_STATES = SETTLED_STATES | {SubmissionState.EVIDENCE_STORED}

#: Seconds a worker may take to start and launch its browser on a loaded machine.
READY_TIMEOUT_S = 180.0


def fleet_knobs(search_latency_s: float) -> dict[str, Any]:
    """The latency-bound portal: a slow VIN search, every fault and pop-up off."""
    return {
        "error_rate": 0.0,
        "latency_ms": 0,
        "search_latency_s": search_latency_s,
        "popup_rate": 0.0,
        "drop_after_submit_rate": 0.0,
    }


def with_fleet_options(
    plan: BenchPlan,
    *,
    workers: list[int] | None = None,
    jobs: int | None = None,
    search_latency_s: float | None = None,
    context_cap: int | None = None,
) -> BenchPlan:
    """The plan with the command line's fleet overrides; validated like the rest of it."""
    update: dict[str, Any] = {}
    if workers:
        update["fleet_workers"] = sorted(set(workers))
    if jobs:
        update["fleet_jobs"] = jobs
    if search_latency_s is not None:
        update["fleet_search_latency_s"] = search_latency_s
    if context_cap:
        update["fleet_context_cap"] = context_cap
    return type(plan).model_validate({**plan.model_dump(), **update})


class _Workers:
    """W worker processes on one database and portal, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, count: int, env: dict[str, str | None], context_cap: int, logs: Path):
        self.count, self.env, self.context_cap, self.logs = count, env, context_cap, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> _Workers:
        for i in range(self.count):
            cmd = [sys.executable, "-m", "submissions_pipeline.cli", "worker", "--oem", BENCH_OEM]
            cmd += ["--port", "0", "--poll-s", "0.5", "--context-cap", str(self.context_cap)]
            log_path = self.logs / f"worker-{i}.log"
            # The child inherits this process's environment with the worker's changes.
            with log_path.open("w") as log, exported_environment(self.env):
                self.procs.append(
                    subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
                )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stop_processes(self.procs)

    def tail(self, i: int, n: int = 600) -> str:
        path = self.logs / f"worker-{i}.log"
        return path.read_text()[-n:] if path.exists() else ""

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until every worker answers /readyz with 200 (its browser is up)."""
        deadline = time.monotonic() + timeout_s
        pending = set(range(self.count))
        while pending:
            for i in sorted(pending):
                if self.procs[i].poll() is not None:
                    raise RuntimeError(f"worker {i} exited at start-up: {self.tail(i)}")
                m = re.search(r"probes and metrics on port (\d+)", self.tail(i, 10**6))
                if m and _status(f"http://127.0.0.1:{m.group(1)}/readyz") == 200:
                    pending.discard(i)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"workers {sorted(pending)} not ready after {timeout_s:.0f} s")
            time.sleep(0.2)


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def worker_env(db_url: str, portal_url: str, home: Path, executable: str) -> dict[str, str | None]:
    """What a worker's environment changes from this process's (None: removed): the queue, the
    portal, the dealers' logins (inline), the browser; the rest is the runner's defaults."""
    from sandbox.accounts import credentials_document

    return {
        "SUBMISSIONS_CREDENTIALS_FILE": None,
        "PYTHONPATH": str(ROOT),
        "SUBMISSIONS_HOME": str(home),
        "SUBMISSIONS_DB_URL": db_url,
        "SUBMISSIONS_PORTAL_URLS": json.dumps({BENCH_OEM: portal_url}),
        "SUBMISSIONS_CREDENTIALS": json.dumps(credentials_document([BENCH_OEM])),
        "SUBMISSIONS_CHROMIUM": executable,
        "SUBMISSIONS_FAILPOINTS": "",
    }


def _wait_done(store: Any, n: int, workers: _Workers, timeout_s: float) -> str:
    """Poll the queue until the workers are done with all `n` jobs; '' or why it stopped."""
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = store.list_jobs(oem=BENCH_OEM)
        if len(jobs) == n and all(j.state in DONE_STATES for j in jobs):
            return ""
        if not workers.alive():
            return "every worker exited before the jobs were done"
        if time.monotonic() > deadline:
            states = Counter(j.state.value for j in jobs)
            return f"timed out after {timeout_s:.0f} s: {dict(states)}"
        time.sleep(0.25)


def measure_fleet_run(
    sandbox: SandboxProcess,
    pg_server_url: str,
    workers: int,
    plan: BenchPlan,
    scratch_root: Path,
    executable: str,
) -> FleetRun:
    """W workers over N fresh jobs in a fresh database, on a freshly reset latency-bound portal."""
    from bench.job_queue import temporary_database
    from submissions_pipeline.domain import Case
    from submissions_pipeline.settings import load_settings
    from submissions_pipeline.store import JobStore

    cap = plan.fleet_context_cap or load_settings().context_cap
    run = FleetRun(
        workers=workers,
        contexts_per_worker=cap,
        jobs=plan.fleet_jobs,
        search_latency_s=plan.fleet_search_latency_s,
    )
    tag = f"fl{workers}{uuid.uuid4().hex[:6]}"
    home = scratch_root / tag
    home.mkdir(parents=True, exist_ok=True)
    sandbox.reset(**fleet_knobs(plan.fleet_search_latency_s))
    cases = bench_cases(plan.fleet_jobs, tag)
    try:
        with temporary_database(pg_server_url) as db_url:
            env = worker_env(db_url, sandbox.base_url(BENCH_OEM), home, executable)
            store = JobStore.from_url(db_url, migrate_schema=False)
            try:
                with _Workers(workers, env, cap, home) as fleet:
                    fleet.wait_ready()
                    with PssSampler(executable, plan.pss_period_s) as sampler:
                        cpu0 = client_cpu_seconds()
                        for raw in cases:
                            store.enqueue(Case.model_validate(raw))
                        run.note = _wait_done(store, len(cases), fleet, plan.fleet_timeout_s)
                        cpu = client_cpu_seconds() - cpu0
                run.peak_pss_mb = round(sampler.peak_mb, 1)
                _summarise(run, store, cpu)
            finally:
                store.dispose()
        _check_ledger(run, sandbox, {c["case_id"] for c in cases})
    except Exception as exc:  # one broken run must not hide the other worker counts
        run.status = "failed"
        run.note = f"{type(exc).__name__}: {exc}"[:400]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if run.status == "ok" and (run.note or not run.correct):
        run.status = "failed"
    return run


def _summarise(run: FleetRun, store: Any, cpu_s: float) -> None:
    """Wall span, rates, job times and the formula's prediction, from what the workers wrote."""
    running = SubmissionState.RUNNING
    jobs = store.list_jobs(oem=BENCH_OEM)
    events = [e for e in store.events() if e.kind == "transition"]
    claims = [e for e in events if e.to_state is running]
    done = [e.at for e in events if e.to_state in DONE_STATES]
    ok = [j for j in jobs if j.state is SubmissionState.EVIDENCE_STORED and j.reference]
    run.settled = sum(j.state in DONE_STATES for j in jobs)
    run.ok = len(ok)
    run.jobs_by_worker = dict(sorted(Counter(e.actor for e in claims).items()))
    if claims and done:
        run.wall_s = round((max(done) - min(e.at for e in claims)).total_seconds(), 3)
    secs = [j.duration_s for j in ok if j.duration_s]
    if run.wall_s and run.ok:
        per_s = run.ok / run.wall_s
        run.jobs_per_s = round(per_s, 4)
        run.jobs_per_hour = round(per_s * 3600)
        run.cpu_s_per_job = round(cpu_s / run.ok, 3)
    if secs:
        mean = statistics.fmean(secs)
        run.mean_job_s = round(mean, 3)
        run.p50_job_s = round(percentile(secs, 50) or 0.0, 3)
        run.p95_job_s = round(percentile(secs, 95) or 0.0, 3)
        concurrency = run.workers * run.contexts_per_worker
        run.predicted_jobs_per_hour = round(concurrency * 3600 / mean)


def _check_ledger(run: FleetRun, sandbox: SandboxProcess, case_ids: set[str]) -> None:
    ledger = sandbox.ledger(BENCH_OEM)
    counts = Counter(e["case_id"] for e in ledger)
    run.ledger_entries = len(ledger)
    run.duplicates = sum(1 for c in counts.values() if c > 1)
    run.missing = len(case_ids - set(counts))


def measure_fleet(
    report: BenchReport,
    plan: BenchPlan,
    pg_url: str | None,
    executable: str,
    scratch_root: Path,
    echo: Echo,
) -> None:
    """Fleet mode into the report: one run per worker count, with scaling against W=1."""
    if not pg_url:
        report.fleet_status = "skipped: no PostgreSQL (set SUBMISSIONS_BENCH_PG_URL)"
        echo(f"fleet mode {report.fleet_status}")
        return
    echo(
        f"  fleet: {plan.fleet_jobs} jobs, search {plan.fleet_search_latency_s:g} s, "
        f"workers {plan.fleet_workers}"
    )
    try:
        with SandboxProcess([BENCH_OEM]) as sandbox:
            for w in plan.fleet_workers:
                r = measure_fleet_run(sandbox, pg_url, w, plan, scratch_root, executable)
                report.fleet.append(r)
                echo(_progress(r))
        report.fleet_status = "ok"
    except Exception as exc:  # the sandbox not starting must not discard the other parts
        report.fleet_status = f"failed: {type(exc).__name__}: {exc}"[:400]
        echo(f"fleet mode {report.fleet_status}")
    base = next((r for r in report.fleet if r.workers == 1 and r.jobs_per_s), None)
    for r in report.fleet:
        if base and r.jobs_per_s:
            r.scaling = round(r.jobs_per_s / base.jobs_per_s, 3)


def _progress(r: FleetRun) -> str:
    head = f"  fleet   W={r.workers} x {r.contexts_per_worker} contexts"
    if r.jobs_per_s is None:
        return f"{head} {r.status}: {r.note}"
    return (
        f"{head} {r.ok}/{r.jobs} ok  settled {r.settled}  {r.jobs_per_s:.3f} jobs/s  "
        f"p50 {r.p50_job_s} s  p95 {r.p95_job_s} s  peak PSS {r.peak_pss_mb:.0f} MB  "
        f"ledger {r.ledger_entries}  duplicates {r.duplicates}  missing {r.missing}"
        + (f"  ({r.note})" if r.note else "")
    )
