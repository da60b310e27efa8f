"""The production path: `make up`'s stack (dagster-webserver and dagster-daemon on PostgreSQL)
launches runs in their own processes, and run monitoring notices a run worker that was killed."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from submissions_pipeline.assets.partitions import NIGHTLY_JOB_NAME, PARTITION_TAG
from submissions_pipeline.assets.submission_runs import BROWSER_POOL
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
from submissions_pipeline.crm.seed import build_bulk_cases
from submissions_pipeline.domain import TERMINAL_STATES, Job
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.launcher import daemon_heartbeats
from submissions_pipeline.run_launcher import alive, run_worker
from submissions_pipeline.stack import Stack, StackConfig
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import jobs_in_the_browser
from submissions_pipeline_tests.servers import _free_port

# One stack for the module: under `make test`'s worker processes its tests stay together.
pytestmark = pytest.mark.xdist_group("daemon_stack")

OEM = "northwind"
POLL_S = 3


@pytest.fixture(scope="module")
def stack(pg_admin_url: str, tmp_path_factory) -> Iterator[Stack]:
    config = StackConfig(
        home=tmp_path_factory.mktemp("up"),
        server_url=pg_admin_url,
        database=f"sp_up_{uuid.uuid4().hex[:8]}",
        port=_free_port(),
        oems=[OEM],
        per_oem=6,
        monitoring_poll_s=POLL_S,
        env={"SUBMISSIONS_RETRY_TIME_SCALE": "0.01"},
    )
    with Stack(config) as running:
        yield running
    drop_databases(pg_admin_url, [config.database, f"{config.database}_dagster"])


def drop_databases(server_url: str, names: list[str]) -> None:
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="module")
def client(stack: Stack) -> DagsterGraphQLClient:
    return DagsterGraphQLClient("127.0.0.1", port_number=stack.config.port)


@pytest.fixture(scope="module")
def instance(stack: Stack) -> Iterator[DagsterInstance]:
    with DagsterInstance.from_config(str(stack.config.dagster_home)) as inst:
        yield inst


@pytest.fixture
def store(stack: Stack) -> Iterator[JobStore]:
    s = JobStore.from_url(stack.config.job_store_url, migrate_schema=False)
    yield s
    s.dispose()


@pytest.fixture
def crm(stack: Stack) -> Iterator[EmbeddedCrm]:
    c = EmbeddedCrm.from_url(stack.config.job_store_url, migrate_schema=False)
    yield c
    c.dispose()


def launch(client: DagsterGraphQLClient) -> str:
    return client.submit_job_execution(NIGHTLY_JOB_NAME, tags={PARTITION_TAG: OEM, "oem": OEM})


def wait_for(predicate, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(1)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


def add_new_cases(crm: EmbeddedCrm, count: int) -> None:
    """`count` cases the CRM has never seen (bulk cases are numbered the same whatever the
    seed, and an id seen before would be a revision of that case, not a new one)."""
    existing = {c.case_id for c in crm.list_cases(oem=OEM)}
    built = build_bulk_cases(
        OEM, len(existing) + count, seed=5, today=date.today(), invalid_share=0.0
    )
    for case in [c for c in built if c.raw["case_id"] not in existing][:count]:
        crm.add_case(case.raw)


def a_run_in_the_browser(store: JobStore) -> tuple[str, list[Job]] | None:
    """A run with jobs past their claim, on the portal, and those jobs. Whichever run of the
    OEM is going takes new cases: the one a test launched, or one the sensors launched first."""
    busy = [j for j in jobs_in_the_browser(store, OEM) if j.run_id]
    if not busy:
        return None
    run_id = busy[0].run_id
    return run_id, [j for j in busy if j.run_id == run_id]


def finished(client: DagsterGraphQLClient, run_id: str) -> DagsterRunStatus | None:
    status = client.get_run_status(run_id)
    return status if status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) else None


def test_a_graphql_launch_runs_under_the_daemon_with_its_checks_and_outlives_a_daemon_restart(
    stack, client, instance, crm, store
):
    stack.sandbox.configure(OEM, search_latency_s=1.5)  # still mid-batch at the restart
    try:
        run_id = launch(client)
        wait_for(lambda: store.list_jobs(run_id=run_id, states=LEASED_STATES), 300, "jobs leased")
        pid, logged_at = wait_for(lambda: run_worker(instance, run_id), 30, "worker PID logged")

        stack.restart_daemon()

        # The run worker is a process of its own, a child of the code server, not of the
        # daemon: it outlived the restart (an operator's, after changing the instance's file).
        assert alive(pid, logged_at) is not None
        status = wait_for(lambda: finished(client, run_id), 300, "run ends")
    finally:
        stack.sandbox.configure(OEM, search_latency_s=0.0)
    assert status is DagsterRunStatus.SUCCESS
    checks = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    assert {r.event_log_entry.dagster_event.event_specific_data.check_name for r in checks} >= {
        "release_gate",
        "error_budget",
        "zero_orphaned_jobs",
    }
    # Finished by that run itself: no retry of a crashed run, every case submitted once.
    retries = [
        r
        for r in instance.get_run_records()
        if r.dagster_run.tags.get("dagster/parent_run_id") == run_id
    ]
    assert retries == []
    submitted = [c for c in crm.list_cases(oem=OEM) if c.status is CrmStatus.SUBMITTED]
    assert submitted and len(stack.sandbox.ledger(OEM)) == len(submitted)
    assert stack.sandbox.duplicates(OEM) == []
    wait_for(lambda: all(b.healthy for b in daemon_heartbeats(instance)), 120, "daemon beats")


def test_a_sigkilled_run_frees_its_slots_and_a_later_run_finishes_its_jobs_once(
    stack, client, instance, crm, store
):
    for case in build_bulk_cases(OEM, 6, seed=99, today=date.today(), invalid_share=0.0):
        crm.add_case(case.raw)
    stack.sandbox.configure(OEM, search_latency_s=4.0)  # slow enough to be killed mid-batch
    run_id = launch(client)
    leased = wait_for(
        lambda: store.list_jobs(run_id=run_id, states=LEASED_STATES), 300, "jobs leased"
    )
    pid, logged_at = wait_for(lambda: run_worker(instance, run_id), 30, "worker PID logged")
    worker = alive(pid, logged_at)
    assert worker is not None

    os.kill(worker.pid, signal.SIGKILL)
    killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
    stack.sandbox.configure(OEM, search_latency_s=0.0)

    assert wait_for(lambda: finished(client, run_id), 240, "run failed") is DagsterRunStatus.FAILURE
    held = lambda: [  # noqa: E731
        s
        for s in instance.event_log_storage.get_concurrency_info(BROWSER_POOL).claimed_slots
        if s.run_id == run_id
    ]
    wait_for(lambda: not held(), 240, "browser slots freed")
    # freed by run monitoring within its interval of the run's end (plus a loaded machine's
    # slack), not held until someone notices
    ended = instance.get_run_record_by_id(run_id).end_time
    assert time.time() - ended < 3 * POLL_S + 45
    assert time.monotonic() - killed_at < 240

    # the crashed run's jobs were given back, never dead-lettered; Dagster retries the
    # crashed run (run_retries), and that later run finishes them
    def settled() -> bool:
        jobs = store.list_jobs(oem=OEM)
        return all(j.state in TERMINAL_STATES for j in jobs)

    wait_for(settled, 600, "every job settled")
    for job in leased:
        after = store.get(job.job_id)
        story = [(e.at, e.to_state, e.step, e.actor) for e in store.events(job.job_id)]
        assert after.state is S.CRM_UPDATED, story
        # the killed run's step process died with it (within a second): nothing it did after
        grace = killed_wall + timedelta(seconds=3)
        assert not [e for e in story if e[3].startswith(f"dagster:{run_id}:") and e[0] > grace], (
            story
        )
    assert stack.sandbox.duplicates(OEM) == []
    ledger = stack.sandbox.ledger(OEM)
    assert len({e.case_id for e in ledger}) == len(ledger)
    assert {j.case_id for j in leased} <= {e.case_id for e in ledger}


def test_a_run_terminated_by_an_operator_stops_and_its_jobs_are_given_back_at_once(
    stack, client, instance, crm, store
):
    add_new_cases(crm, 4)
    stack.sandbox.configure(OEM, search_latency_s=4.0)
    launch(client)
    run_id, held = wait_for(lambda: a_run_in_the_browser(store), 300, "a job in the browser")
    client.terminate_run(run_id)
    terminated_at = datetime.now(UTC)
    stack.sandbox.configure(OEM, search_latency_s=0.0)

    canceled = lambda: client.get_run_status(run_id) is DagsterRunStatus.CANCELED  # noqa: E731
    wait_for(canceled, 120, "run canceled")
    # Given back by the canceled-run sensor, long before their 3-minute leases would expire.
    wait_for(lambda: not store.list_jobs(run_id=run_id, states=LEASED_STATES), 120, "given back")
    assert datetime.now(UTC) - terminated_at < timedelta(seconds=150)
    for job in held:
        story = [(e.at, e.to_state, e.actor) for e in store.events(job.job_id)]
        assert any(a == f"dagster:run_canceled:{run_id}" for _, _, a in story), story
    # The stopped steps did nothing once Dagster had recorded the run's end.
    ended = datetime.fromtimestamp(instance.get_run_record_by_id(run_id).end_time, UTC)
    late = [
        (j.case_id, e.to_state, e.step)
        for j in store.list_jobs(oem=OEM)
        for e in store.events(j.job_id)
        if e.actor.startswith(f"dagster:{run_id}:") and e.at > ended
    ]
    assert late == []

    finisher = launch(client)
    assert wait_for(lambda: finished(client, finisher), 300, "run ends") is DagsterRunStatus.SUCCESS
    wait_for(
        lambda: all(j.state in TERMINAL_STATES for j in store.list_jobs(oem=OEM)), 300, "settled"
    )
    for job in held:
        assert store.get(job.job_id).state is S.CRM_UPDATED
    assert stack.sandbox.duplicates(OEM) == []


def test_a_run_worker_told_to_stop_gives_its_jobs_back_instead_of_dead_lettering_them(
    stack, client, instance, crm, store
):
    """What a node drain or a rolling deploy does to a run's pod: SIGTERM to the run worker.
    The run ends failed, but its jobs were stopped, not broken: back to the queue, no human."""
    add_new_cases(crm, 4)
    stack.sandbox.configure(OEM, search_latency_s=4.0)
    launch(client)
    run_id, held = wait_for(lambda: a_run_in_the_browser(store), 300, "a job in the browser")
    pid, logged_at = wait_for(lambda: run_worker(instance, run_id), 30, "worker PID logged")
    worker = alive(pid, logged_at)
    assert worker is not None
    os.kill(worker.pid, signal.SIGTERM)
    stack.sandbox.configure(OEM, search_latency_s=0.0)

    assert wait_for(lambda: finished(client, run_id), 120, "run ends") is DagsterRunStatus.FAILURE
    wait_for(lambda: not store.list_jobs(run_id=run_id, states=LEASED_STATES), 120, "given back")
    for job in held:
        story = [(e.to_state, e.actor) for e in store.events(job.job_id)]
        assert (S.DEAD_LETTERED, "dagster:run_failure_sensor") not in story, story
        assert any(a == f"dagster:run_interrupted:{run_id}" for _, a in story), story

    wait_for(
        lambda: all(j.state in TERMINAL_STATES for j in store.list_jobs(oem=OEM)), 600, "settled"
    )
    for job in held:
        assert store.get(job.job_id).state is S.CRM_UPDATED
    assert stack.sandbox.duplicates(OEM) == []
