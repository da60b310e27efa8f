"""Three workers at once on PostgreSQL: a worker SIGKILLed at each milestone loses nothing and
duplicates nothing, and a portal's per-dealer cap holds however many workers claim."""

from __future__ import annotations

import shutil
import signal
import threading

from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.settings import PROJECT_ROOT
from submissions_pipeline_tests.factories import make_case
from submissions_pipeline_tests.fleet.harness import wait_until

LEASE = ("--lease-s", "3", "--context-cap", "1", "--oem", "northwind")


def ready(*workers) -> None:
    for w in workers:
        wait_until(lambda w=w: w.get("/readyz")[0] == 200, timeout=90)


def test_workers_killed_at_every_milestone_leave_each_case_submitted_exactly_once(
    fleet, pg_store, sandbox
):
    survivor = fleet.start(*LEASE)
    rounds = [
        ("before_submit", "after_submit_click"),
        ("after_reference", "during_evidence_upload"),
    ]
    killed = []
    for r, points in enumerate(rounds):
        doomed = [fleet.start(*LEASE, failpoint=p) for p in points]
        ready(survivor, *doomed)  # three workers running
        for n in range(4 * r, 4 * r + 4):
            pg_store.enqueue(make_case(n, oem="northwind"))
        for w in doomed:
            assert w.proc.wait(timeout=120) == -signal.SIGKILL, w.tail()
        killed += doomed

    wait_until(lambda: len(pg_store.list_jobs(states=[S.EVIDENCE_STORED])) == 8, timeout=240)
    ledger = sandbox.ledger("northwind")
    assert len(ledger) == 8 and sandbox.duplicates("northwind") == []  # 0 duplicates
    assert pg_store.list_jobs(states=LEASED_STATES) == []  # 0 orphans after the reaper
    reaped = [e.job_id for e in pg_store.events() if e.actor == "reaper"]
    # Each killed worker's job came back through the reaper (a job may die twice).
    assert len(reaped) == len(killed) == 4
    refs = {e.case_id: e.reference for e in ledger}
    for job in pg_store.list_jobs():
        assert job.reference == refs[job.case_id]  # the portal's reference, proven
    assert survivor.terminate() == 0


def test_a_per_dealer_cap_holds_with_three_workers_claiming(fleet, pg_store, sandbox, tmp_path):
    adapters = tmp_path / "adapters"
    shutil.copytree(PROJECT_ROOT / "adapters", adapters)
    with (adapters / "northwind" / "oem.toml").open("a") as f:
        f.write("\n[concurrency]\nmax_per_dealer = 1\n")
    sandbox.configure("northwind", search_latency_s=0.5)
    workers = [
        fleet.start(
            "--oem", "northwind", "--context-cap", "2", SUBMISSIONS_ADAPTERS_DIR=str(adapters)
        )
        for _ in range(3)
    ]
    ready(*workers)
    # Six jobs of two dealers: six contexts could run them all at once, the cap allows two.
    for n in (1, 6, 11, 5, 10, 15):
        pg_store.enqueue(make_case(n, oem="northwind"))
    seen: list[dict[str, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            seen.append(pg_store.leased_by_dealer("northwind"))
            stop.wait(0.03)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        wait_until(lambda: len(pg_store.list_jobs(states=[S.EVIDENCE_STORED])) == 6, timeout=180)
    finally:
        stop.set()
        sampler.join()
    assert max(max(s.values(), default=0) for s in seen) == 1  # never two sessions per dealer
    assert max(sum(s.values()) for s in seen) == 2  # both dealers did work at once
    assert sandbox.duplicates("northwind") == []
    for w in workers:
        assert w.terminate() == 0
