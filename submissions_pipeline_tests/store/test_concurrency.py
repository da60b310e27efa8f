"""Real worker processes pulling from one queue: no double claims, and killed workers recovered."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest

from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import make_case


def _claim_until_empty(url: str, worker: str, out: mp.Queue, start: Any) -> None:
    store = JobStore.from_url(url, migrate_schema=False)
    store.stats()  # connected before the start, so no worker's start-up decides the race
    start.wait(timeout=120)
    mine: list[str] = []
    while True:
        got = store.claim(worker, limit=3, lease_s=600)
        if not got:
            break
        for job in got:
            store.transition(job.job_id, S.SUBMITTED, actor=worker, lease_owner=worker)
            mine.append(job.job_id)
    store.dispose()
    out.put(mine)


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_concurrent_worker_processes_never_claim_the_same_job(backend, request):
    url = request.getfixturevalue("pg_url" if backend == "postgres" else "sqlite_url")
    store = JobStore.from_url(url)
    n_jobs, n_workers = 240, 4
    for n in range(n_jobs):
        store.enqueue(make_case(n))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    # All start claiming at once: a spawned process that imports and connects first would
    # otherwise drain the queue before the others exist, and prove nothing about sharing.
    start = ctx.Barrier(n_workers)
    procs = [
        ctx.Process(target=_claim_until_empty, args=(url, f"w{i}", out, start))
        for i in range(n_workers)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    claimed = [j for r in results for j in r]
    assert len(claimed) == n_jobs and len(set(claimed)) == n_jobs
    assert sum(1 for r in results if r) >= 2, "work should really be shared between workers"
    claims = Counter(
        e.job_id for e in store.events() if e.kind == "transition" and e.to_state is S.RUNNING
    )
    assert set(claims.values()) == {1}
    assert {j.state for j in store.list_jobs()} == {S.SUBMITTED}
    store.dispose()


WORKER = """
import sys, time
from submissions_pipeline.store import JobStore
store = JobStore.from_url(sys.argv[1], migrate_schema=False)
(job,) = store.claim("doomed-worker", lease_s=1.0)
for step in sys.argv[2].split(","):
    store.record_milestone(job.job_id, "doomed-worker", step)
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ("login,fill,pre_submit_evidence", S.QUEUED),
        ("login,fill,pre_submit_evidence,submit_clicked", S.NEEDS_RECONCILIATION),
    ],
)
def test_killed_worker_is_reaped_by_its_last_step(db_url, steps, expected):
    store = JobStore.from_url(db_url)
    job_id = store.enqueue(make_case(1)).job_id
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, db_url, steps],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert store.get(job_id).state is S.RUNNING  # nothing lies about the dead worker yet
        time.sleep(1.2)
        (reaped,) = store.reap_expired()
    finally:
        proc.kill()
    assert reaped.job_id == job_id and reaped.state is expected
    assert reaped.last_step == steps.split(",")[-1]
    assert store.events(job_id)[-1].actor == "reaper"
    if expected is S.NEEDS_RECONCILIATION:
        assert reaped.submit_attempted
    store.dispose()
