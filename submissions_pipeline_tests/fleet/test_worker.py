"""`submissions worker` as a disposable unit: one browser across polls, probes, metrics, drains."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline_tests.factories import make_case
from submissions_pipeline_tests.fleet.harness import wait_until


def settled(store, n: int) -> bool:
    return len(store.list_jobs(states=[S.EVIDENCE_STORED])) >= n


def test_one_browser_serves_every_poll_with_probes_and_metrics_then_sigterm_exits_0(
    fleet, pg_store, pg_url
):
    worker = fleet.start("--oem", "northwind", SUBMISSIONS_WORKER_STALL_S="2")
    assert wait_until(lambda: worker.get("/readyz")[0] == 200)
    for n in (1, 2):
        pg_store.enqueue(make_case(n, oem="northwind"))
    wait_until(lambda: settled(pg_store, 2))
    for n in (3, 4):  # a later poll: the same browser serves it
        pg_store.enqueue(make_case(n, oem="northwind"))
    wait_until(lambda: settled(pg_store, 4))

    m = worker.metrics()
    assert m[("submissions_worker_browser_launches", ())] == 1
    done = ("submissions_worker_jobs_total", (("oem", "northwind"), ("state", "evidence_stored")))
    assert m[done] == 4
    assert m[("submissions_worker_step_seconds_count", (("step", "search"),))] == 4
    # The autoscaling gauge is recomputed on the worker's next tick after the queue drained.
    desired = ("submissions_worker_desired_workers", (("oem", "northwind"),))
    assert wait_until(lambda: worker.metrics()[desired] == 0)
    assert ("submissions_worker_browser_pss_bytes", ()) in m
    assert worker.get("/healthz") == (200, "ok")

    # The database stops answering (a lock held elsewhere): claims and reaps stall.
    admin = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.connect() as conn:
        conn.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))
        _, why = wait_until(lambda: (r := worker.get("/healthz"))[0] == 503 and r, timeout=20)
        assert "no claim, reap or heartbeat" in why
        conn.rollback()
    admin.dispose()
    wait_until(lambda: worker.get("/healthz")[0] == 200, timeout=20)

    assert worker.terminate() == 0
    assert pg_store.list_jobs(states=LEASED_STATES) == []


def test_sigterm_lets_the_attempt_in_flight_finish_and_claims_nothing_more(
    fleet, pg_store, sandbox
):
    sandbox.configure("northwind", search_latency_s=2.0)
    ids = [pg_store.enqueue(make_case(n, oem="northwind")).job_id for n in (1, 2, 3)]
    worker = fleet.start("--oem", "northwind", "--context-cap", "1", "--drain-grace-s", "60")
    wait_until(lambda: pg_store.list_jobs(states=[S.RUNNING]), timeout=60)
    worker.proc.send_signal(15)
    assert wait_until(lambda: worker.get("/readyz")[0] == 503, timeout=10)
    assert worker.proc.wait(timeout=60) == 0, worker.tail()

    jobs = [pg_store.get(i) for i in ids]
    assert sorted(j.state for j in jobs) == [S.EVIDENCE_STORED, S.QUEUED, S.QUEUED]
    assert [j.attempt for j in jobs if j.state is S.QUEUED] == [0, 0]  # never claimed
    assert len(sandbox.ledger("northwind")) == 1


def test_a_drain_past_its_grace_gives_the_unfinished_attempt_back_to_the_queue(
    fleet, pg_store, sandbox
):
    sandbox.configure("northwind", search_latency_s=8.0)
    job_id = pg_store.enqueue(make_case(1, oem="northwind")).job_id
    worker = fleet.start("--oem", "northwind", "--context-cap", "1", "--drain-grace-s", "0.5")
    wait_until(lambda: pg_store.get(job_id).last_step == "login", timeout=60)
    assert worker.terminate() == 0, worker.tail()

    job = pg_store.get(job_id)
    assert job.state is S.QUEUED and job.lease_owner is None  # before the click: requeued
    assert sandbox.ledger("northwind") == []
    assert any(e.actor.endswith("(drain)") for e in pg_store.events(job_id))


def test_a_browser_over_its_memory_limit_is_relaunched_between_jobs(fleet, pg_store):
    for n in (1, 2, 3):
        pg_store.enqueue(make_case(n, oem="northwind"))
    worker = fleet.start(
        "--oem",
        "northwind",
        "--context-cap",
        "1",
        "--memory-limit-mb",
        "1",
        "--memory-check-s",
        "0.3",
    )
    wait_until(lambda: settled(pg_store, 3), timeout=120)
    m = worker.metrics()
    assert m[("submissions_worker_browser_relaunches_total", (("reason", "memory"),))] >= 1
    assert m[("submissions_worker_browser_launches", ())] >= 2
    assert m[("submissions_worker_browser_pss_bytes", ())] > 1024 * 1024
    assert worker.terminate() == 0
