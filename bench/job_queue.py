"""Queue mode: the job store's own claim and transitions on PostgreSQL, beside a raw-SQL floor.

No browser. Every claimer pulls jobs until the queue is empty, doing per job what a real one
costs the database:

* ``lifecycle`` (what the runner does per job): claim, five milestones (login, search, fill,
  pre-submit evidence, submit clicked), ``submitted`` with the reference, ``evidence_stored``
  with the manifest, and the step timings: nine transactions, eight with an event row.
* ``claim_complete`` (the floor): claim, then one completion (``submitted``), each with
  an event row.

``store`` issues them through `JobStore` (row lock, version check, lease check, typed rows);
``raw`` issues the same writes as direct psycopg statements on the same schema: a
``FOR UPDATE SKIP LOCKED`` claim and guarded ``UPDATE``s, each with its ``INSERT`` into
job_events, no project code. Claimers are separate processes by default (real workers are), or
threads with one connection each; each has its own connection.
"""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from bench.measures import STEP_ORDER

if TYPE_CHECKING:
    # Imported where used, like the project modules: a raw claimer process loads none of them.
    from bench.report import QueueResult

Impl = Literal["store", "raw"]
Workload = Literal["lifecycle", "claim_complete"]
IMPLS: tuple[Impl, ...] = ("store", "raw")
WORKLOADS: tuple[Workload, ...] = ("lifecycle", "claim_complete")
TRANSACTIONS_PER_JOB = {"lifecycle": 9, "claim_complete": 2}

OEM = "northwind"
LEASE_S = 180.0
MILESTONES = ("login", "search", "fill", "pre_submit_evidence", "submit_clicked")
STEP_TIMINGS = [(step, 0.5, True) for step in STEP_ORDER]
CLAIMABLE = ["queued", "retry_scheduled", "needs_reconciliation"]
#: Seconds any claimer may take for one run before the harness gives up on it.
RUN_TIMEOUT_S = 600.0


def _evidence() -> dict[str, Any]:
    """A manifest reference the size of a real one (eight files with SHA-256s)."""
    base = "dev/northwind/2026-11-26/0123456789abcdef0123456789abcdef/attempt-1"
    names = ["pre_submit.png", "post_confirm.png", "trace-1.zip", "trace-2.zip", "steps.json"]
    return {
        "manifest_key": f"{base}/manifest.json",
        "reference": "NW-2026-004217",
        "reconciled": False,
        "items": [
            {"name": n, "key": f"{base}/{n}", "sha256": "ab" * 32, "size": 48_213} for n in names
        ],
    }


EVIDENCE = _evidence()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ClaimerStats:
    """What one claimer did in one run (monotonic clock: comparable across processes)."""

    jobs: int = 0
    claim_s: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    error: str | None = None


# ------------------------------------------------------------------------ the two claimers


class StoreClaimer:
    """Pulls jobs through the project's JobStore, exactly as `runner.job.process_job` does."""

    def __init__(self, url: str, worker_id: str):
        from submissions_pipeline.store import JobStore

        self.store = JobStore.from_url(url, migrate_schema=False)
        self.worker = worker_id

    def one(self, workload: Workload, stats: ClaimerStats) -> bool:
        from submissions_pipeline.domain import Step, SubmissionState

        t0 = time.monotonic()
        claimed = self.store.claim(self.worker, oem=OEM, limit=1, lease_s=LEASE_S)
        if not claimed:
            return False
        stats.claim_s.append(time.monotonic() - t0)
        job, w = claimed[0], self.worker
        if workload == "lifecycle":
            for step in MILESTONES:
                self.store.record_milestone(job.job_id, w, step, lease_s=LEASE_S)
        self.store.transition(
            job.job_id,
            SubmissionState.SUBMITTED,
            actor=w,
            lease_owner=w,
            step=Step.REFERENCE_PARSED.value,
            reference="NW-2026-004217",
            submitted_by_automation=True,
        )
        if workload == "lifecycle":
            self.store.transition(
                job.job_id,
                SubmissionState.EVIDENCE_STORED,
                actor=w,
                lease_owner=w,
                step=Step.EVIDENCE_STORED.value,
                evidence=EVIDENCE,
                duration_s=1.0,
            )
            self.store.record_step_timings(job.job_id, job.attempt, STEP_TIMINGS)
        return True

    def close(self) -> None:
        self.store.dispose()


_RAW_CLAIM = """
WITH picked AS (
    SELECT job_id, state FROM jobs
    WHERE state = ANY(%(claimable)s) AND oem = %(oem)s AND next_attempt_at <= %(now)s
    ORDER BY priority DESC, next_attempt_at, created_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j SET
    state = 'running', lease_owner = %(w)s, lease_expires_at = %(lease)s,
    attempt = j.attempt + 1, last_step = 'claimed',
    started_at = COALESCE(j.started_at, %(now)s), updated_at = %(now)s, version = j.version + 1
FROM picked WHERE j.job_id = picked.job_id
RETURNING j.job_id, picked.state, j.attempt
"""
_RAW_EVENT = """
INSERT INTO job_events (job_id, kind, from_state, to_state, actor, step, detail, at)
VALUES (%s, %s, %s, %s, %s, %s, '{}', %s)
"""
_RAW_MILESTONE = """
UPDATE jobs SET last_step = %(step)s, updated_at = %(now)s, lease_expires_at = %(lease)s,
    submit_attempted = submit_attempted OR %(submit)s, version = version + 1
WHERE job_id = %(id)s AND lease_owner = %(w)s AND state IN ('running', 'submitted')
"""
_RAW_SUBMITTED = """
UPDATE jobs SET state = 'submitted', reference = %(ref)s, submitted_by_automation = true,
    last_step = 'reference_parsed', submit_attempted = true, updated_at = %(now)s,
    version = version + 1
WHERE job_id = %(id)s AND lease_owner = %(w)s AND state = 'running'
"""
_RAW_EVIDENCE_STORED = """
UPDATE jobs SET state = 'evidence_stored', evidence = %(evidence)s, duration_s = 1.0,
    last_step = 'evidence_stored', lease_owner = NULL, lease_expires_at = NULL,
    updated_at = %(now)s, version = version + 1
WHERE job_id = %(id)s AND lease_owner = %(w)s AND state = 'submitted'
"""
_RAW_STEPS = """
INSERT INTO job_steps (job_id, attempt, step, seconds, ok, at) VALUES (%s, %s, %s, %s, %s, %s)
"""


class RawClaimer:
    """The same writes as direct SQL on one psycopg connection: the floor."""

    def __init__(self, url: str, worker_id: str):
        import psycopg

        self.conn = psycopg.connect(_libpq_url(url))
        self.worker = worker_id

    def _guarded(self, sql: str, params: dict[str, Any], event: tuple[Any, ...]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(sql, params)
            if cur.rowcount != 1:
                raise RuntimeError(f"lease lost on {params['id']}")
            cur.execute(_RAW_EVENT, event)

    def one(self, workload: Workload, stats: ClaimerStats) -> bool:
        w = self.worker
        t0 = time.monotonic()
        now = _now()
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                _RAW_CLAIM,
                {
                    "claimable": CLAIMABLE,
                    "oem": OEM,
                    "now": now,
                    "w": w,
                    "lease": now + timedelta(seconds=LEASE_S),
                },
            )
            row = cur.fetchone()
            if row is None:
                return False
            job_id, from_state, attempt = row
            cur.execute(
                _RAW_EVENT, (job_id, "transition", from_state, "running", w, "claimed", now)
            )
        stats.claim_s.append(time.monotonic() - t0)
        if workload == "lifecycle":
            for step in MILESTONES:
                now = _now()
                self._guarded(
                    _RAW_MILESTONE,
                    {
                        "step": step,
                        "now": now,
                        "lease": now + timedelta(seconds=LEASE_S),
                        "submit": step == "submit_clicked",
                        "id": job_id,
                        "w": w,
                    },
                    (job_id, "milestone", "running", "running", w, step, now),
                )
        now = _now()
        self._guarded(
            _RAW_SUBMITTED,
            {"ref": "NW-2026-004217", "now": now, "id": job_id, "w": w},
            (job_id, "transition", "running", "submitted", w, "reference_parsed", now),
        )
        if workload == "lifecycle":
            now = _now()
            self._guarded(
                _RAW_EVIDENCE_STORED,
                {"evidence": json.dumps(EVIDENCE), "now": now, "id": job_id, "w": w},
                (job_id, "transition", "submitted", "evidence_stored", w, "evidence_stored", now),
            )
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.executemany(
                    _RAW_STEPS, [(job_id, attempt, s, sec, ok, now) for s, sec, ok in STEP_TIMINGS]
                )
        return True

    def close(self) -> None:
        self.conn.close()


def _libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as libpq reads it (postgresql://...)."""
    _scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if sep else url


def make_claimer(impl: Impl, url: str, worker_id: str) -> StoreClaimer | RawClaimer:
    """A claimer with its own connection."""
    return StoreClaimer(url, worker_id) if impl == "store" else RawClaimer(url, worker_id)


def drain(claimer: StoreClaimer | RawClaimer, workload: Workload) -> ClaimerStats:
    """Pull jobs until the queue is empty (bounded: the queue was filled before the start)."""
    stats = ClaimerStats(started=time.monotonic())
    try:
        while claimer.one(workload, stats):
            stats.jobs += 1
    except Exception as exc:
        stats.error = f"{type(exc).__name__}: {exc}"[:300]
    stats.finished = time.monotonic()
    return stats


# ------------------------------------------------------------------------ the database


@contextlib.contextmanager
def temporary_database(admin_url: str) -> Iterator[str]:
    """A migrated throwaway database with a unique name on the server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from submissions_pipeline.store import JobStore

    name = f"sp_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = (
            make_url(admin_url)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
        JobStore.from_url(url).dispose()  # migrate
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fill_queue(url: str, n: int) -> None:
    """Empty the tables, then queue `n` due jobs (one multi-row insert) and analyse them."""
    from sqlalchemy import create_engine, insert, text

    from submissions_pipeline.store.schema import jobs

    now = _now() - timedelta(seconds=1)
    payload = {
        "repair_date": "2026-11-02",
        "mileage": 12_345,
        "complaint": "Customer states check engine light on and rough idle at cold start",
        "cause": "Ignition coil cylinder 2 failed",
        "correction": "Replaced ignition coil, cleared codes",
        "labor_hours": 1.2,
        "part_number": "IGN-4471",
    }
    rows = [
        {
            "job_id": uuid.uuid4().hex,
            "case_id": f"Q-{i:06d}",
            "oem": OEM,
            "dealer_id": "D1001",
            "vin": "1HGCM82633A004352",
            "idempotency_key": uuid.uuid4().hex,
            "payload": payload,
            "priority": 0,
            "redaction_sensitive": False,
            "test_record": False,
            "state": "queued",
            "attempt": 0,
            "max_attempts": 3,
            "next_attempt_at": now,
            "submit_attempted": False,
            "submitted_by_automation": False,
            "created_at": now,
            "updated_at": now,
            "version": 0,
        }
        for i in range(n)
    ]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE jobs, job_events, job_steps RESTART IDENTITY"))
            conn.execute(insert(jobs), rows)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE jobs"))
    finally:
        engine.dispose()


def server_version(url: str) -> str:
    """PostgreSQL's version string, for the report."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    finally:
        engine.dispose()


# ------------------------------------------------------------------------ claimers at scale


class ThreadClaimers:
    """Claimers as threads of this process, one connection each."""

    kind = "threads"

    def __init__(self, url: str, count: int):
        self.url = url
        self.count = count

    def run(self, impl: Impl, workload: Workload, claimers: int) -> list[ClaimerStats]:
        made = [make_claimer(impl, self.url, f"bench-{impl}-{i}") for i in range(claimers)]
        start = threading.Barrier(claimers)
        results: list[ClaimerStats] = [ClaimerStats() for _ in made]

        def work(i: int) -> None:
            start.wait(timeout=RUN_TIMEOUT_S)
            results[i] = drain(made[i], workload)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(claimers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=RUN_TIMEOUT_S)
        for c in made:
            c.close()
        return results

    def close(self) -> None:
        pass


class ProcessClaimers:
    """Claimers as child processes (`python -m bench.job_queue URL`), started once and reused.

    Protocol, one JSON line each way: the harness sends {impl, workload, worker}; the child
    connects (once per impl) and answers "ready"; the harness sends "go" to every participant
    at once; each child drains the queue and answers with its ClaimerStats.
    """

    kind = "processes"

    def __init__(self, url: str, count: int):
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.job_queue", url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]

    @staticmethod
    def _send(proc: subprocess.Popen[str], line: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(line + "\n")
        proc.stdin.flush()

    @staticmethod
    def _receive(proc: subprocess.Popen[str]) -> str:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], RUN_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError("a claimer process died or hung")
        return line.strip()

    def run(self, impl: Impl, workload: Workload, claimers: int) -> list[ClaimerStats]:
        used = self.procs[:claimers]
        for i, proc in enumerate(used):
            self._send(proc, json.dumps({"impl": impl, "workload": workload, "worker": i}))
        for proc in used:
            self._receive(proc)  # "ready": connected, waiting for the start
        for proc in used:
            self._send(proc, "go")
        return [ClaimerStats(**json.loads(self._receive(proc))) for proc in used]

    def close(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()


def child_main(url: str) -> int:
    """A claimer process: one connection per impl, kept across runs; stops at stdin's EOF."""
    claimers: dict[str, StoreClaimer | RawClaimer] = {}
    try:
        for line in sys.stdin:
            order = json.loads(line)
            impl = order["impl"]
            if impl not in claimers:
                claimers[impl] = make_claimer(impl, url, f"bench-{impl}-{order['worker']}")
            print("ready", flush=True)
            if sys.stdin.readline().strip() != "go":
                return 1
            stats = drain(claimers[impl], order["workload"])
            print(json.dumps(asdict(stats)), flush=True)
    finally:
        for c in claimers.values():
            c.close()
    return 0


def measure(
    url: str,
    claimer_counts: Sequence[int],
    jobs_for: dict[Workload, int],
    claimers_as: Literal["threads", "processes"] = "processes",
    echo: Callable[[str], None] = print,
) -> list[QueueResult]:
    """Every workload, impl and claimer count on a fresh queue of jobs, store and raw in turn."""
    from bench.report import QueueResult
    from submissions_pipeline.domain.stats import percentile

    pool_cls = ProcessClaimers if claimers_as == "processes" else ThreadClaimers
    pool = pool_cls(url, max(claimer_counts))
    runs: list[QueueResult] = []
    try:
        for workload in WORKLOADS:
            for count in claimer_counts:
                for impl in IMPLS:
                    n = max(jobs_for[workload], count * 10)
                    fill_queue(url, n)
                    stats = pool.run(impl, workload, count)
                    done = sum(s.jobs for s in stats)
                    wall = max(s.finished for s in stats) - min(s.started for s in stats)
                    claims = [x for s in stats for x in s.claim_s]
                    p50, p95 = percentile(claims, 50), percentile(claims, 95)
                    run = QueueResult(
                        impl=impl,
                        workload=workload,
                        claimers=count,
                        jobs=done,
                        wall_s=wall,
                        jobs_per_s=done / wall if wall > 0 else 0.0,
                        p50_claim_ms=p50 * 1000 if p50 is not None else None,
                        p95_claim_ms=p95 * 1000 if p95 is not None else None,
                        errors=sorted({s.error for s in stats if s.error}),
                    )
                    runs.append(run)
                    echo(
                        f"  queue {workload:<14} {impl:<5} {count:>2} claimers: "
                        f"{run.jobs_per_s:8.1f} jobs/s, p95 claim "
                        f"{run.p95_claim_ms or 0:6.1f} ms ({done}/{n} jobs"
                        + (f"; errors: {run.errors}" if run.errors else "")
                        + ")"
                    )
    finally:
        pool.close()
    return runs


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1]))
