"""Every schedule and sensor, evaluated against a real instance and job store."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetSelection,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from adapters import oem_keys
from submissions_pipeline.assets import crm_cases, submission_runs
from submissions_pipeline.assets.partitions import worker_id
from submissions_pipeline.crm import EmbeddedCrm
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.domain import FailureObject, ReasonCode, Step, SubmissionState
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.resources import EmbeddedCrmResource
from submissions_pipeline.schedules import ALL_SCHEDULES, morning_report
from submissions_pipeline.sensors import (
    lease_reaper_sensor,
    new_crm_cases_sensor,
    retries_due_sensor,
    run_failure_alert_sensor,
    unwritten_outcomes_sensor,
)
from submissions_pipeline.store import JobStore
from submissions_pipeline.store.schema import jobs
from submissions_pipeline_tests.dagster.conftest import OEM, arrange_proven_job, run_selection
from submissions_pipeline_tests.factories import case_record, make_case

S = SubmissionState


@pytest.fixture
def defs(resources) -> Definitions:
    return build_definitions(resources)


def tick(sensor_def, instance: DagsterInstance, resources, cursor: str | None = None):
    """One evaluation of a sensor, as the daemon runs it: its resources opened for the tick."""
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor_def(context)


# ---------------------------------------------------------------- schedules


@pytest.mark.parametrize("oem", oem_keys())
def test_each_oem_runs_nightly_at_its_off_hours_time(oem: str, defs: Definitions):
    schedule = defs.resolve_schedule_def(f"nightly_{oem}")
    settings = oem_registry().settings(oem).schedule
    assert (schedule.cron_schedule, schedule.execution_timezone) == (
        settings.nightly_cron,
        settings.timezone,
    )
    hour = int(settings.nightly_cron.split()[1])
    assert 0 <= hour < 6, "nightly runs happen off-hours"

    tick = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    context = build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    )
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == oem
    assert request.tags["oem"] == oem and request.tags["submissions/trigger"] == "nightly"
    assert request.run_key == f"nightly:{oem}:2026-11-27T02:00+0000"
    assert schedule.job_name == "submissions_nightly"


def test_a_nightly_tick_is_skipped_while_the_oems_run_is_still_going(defs: Definitions):
    # every trigger launches the same job: a second run would only queue behind the first
    tick = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    with instance_for_test() as instance:
        instance.add_run(
            DagsterRun(
                job_name="submissions_nightly",
                run_id="still-going",
                status=DagsterRunStatus.STARTED,
                tags={"dagster/partition": "northwind"},
            )
        )
        for oem, expected in (("northwind", 0), ("kestrel", 1)):
            context = build_schedule_context(
                instance=instance,
                scheduled_execution_time=tick,
                repository_def=defs.get_repository_def(),
            )
            result = defs.resolve_schedule_def(f"nightly_{oem}").evaluate_tick(context)
            assert len(result.run_requests or []) == expected, oem


def test_the_morning_report_is_built_before_business_hours(defs: Definitions):
    context = build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 27, 6, 0, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    [request] = morning_report.evaluate_tick(context).run_requests
    assert request.run_key == "report:2026-11-27"
    assert {s.name for s in ALL_SCHEDULES} == {f"nightly_{o}" for o in oem_keys()} | {
        "morning_report",
        "daily_evidence_purge",
    }


# ---------------------------------------------------------------- new CRM cases


def test_each_new_crm_case_triggers_at_most_one_run(
    defs: Definitions, instance: DagsterInstance, crm: EmbeddedCrm
):
    for n in (1, 2):
        crm.add_case(case_record(n, oem="northwind"))
    crm.add_case(case_record(3, oem="kestrel"))

    first = tick(new_crm_cases_sensor, instance, defs.resources)
    by_oem = {r.partition_key: r for r in first.run_requests}
    assert set(by_oem) == {"northwind", "kestrel"}
    assert by_oem["northwind"].run_key.startswith("crm-cases:northwind:")

    again = tick(new_crm_cases_sensor, instance, defs.resources, first.cursor)
    assert again.run_requests == [] and again.cursor == first.cursor

    crm.add_case(case_record(4, oem="northwind"))
    third = tick(new_crm_cases_sensor, instance, defs.resources, first.cursor)
    [request] = third.run_requests
    assert request.partition_key == "northwind"
    assert request.run_key != by_oem["northwind"].run_key
    assert json.loads(third.cursor)["kestrel"] == json.loads(first.cursor)["kestrel"]


# ---------------------------------------------------------------- retries


def _fail_once(store: JobStore, n: int, at: datetime) -> str:
    """A job whose first attempt timed out at `at`: its retry comes due 4-12 min later."""
    job_id = store.enqueue(make_case(n), now=at).job_id
    store.claim("w", oem=OEM, now=at)
    store.record_failure(
        job_id,
        FailureObject.of(ReasonCode.SITE_TIMEOUT, "slow"),
        actor="w",
        lease_owner="w",
        now=at,
    )
    assert store.get(job_id).state is S.RETRY_SCHEDULED
    return job_id


def test_a_retry_coming_due_starts_one_run_for_its_oem(
    defs: Definitions, instance: DagsterInstance, store: JobStore
):
    now = datetime.now(UTC)
    _fail_once(store, 1, now)
    not_yet = tick(retries_due_sensor, instance, defs.resources)
    assert not_yet.run_requests == []

    _fail_once(store, 2, now - timedelta(hours=1))
    due = tick(retries_due_sensor, instance, defs.resources)
    [request] = due.run_requests
    assert request.partition_key == OEM and request.tags["submissions/trigger"] == "retries_due"

    once = tick(retries_due_sensor, instance, defs.resources, due.cursor)
    assert once.run_requests == []


# ---------------------------------------------------------------- unwritten outcomes


def test_outcomes_a_run_could_not_write_back_are_written_by_a_later_run(
    defs: Definitions, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm, resources
):
    artifacts = resources["artifacts"].get_store()
    proven = arrange_proven_job(store, crm, artifacts, 1)  # the CRM write-back never happened
    quiet = tick(unwritten_outcomes_sensor, instance, defs.resources)
    assert quiet.run_requests == []  # a run writes back minutes after the proof: not yet
    with store.engine.begin() as conn:  # twenty minutes pass
        conn.execute(jobs.update().values(updated_at=datetime.now(UTC) - timedelta(minutes=20)))

    due = tick(unwritten_outcomes_sensor, instance, defs.resources)
    [request] = due.run_requests
    assert request.partition_key == OEM and unwritten_outcomes_sensor.job_name == "crm_writeback"
    again = tick(unwritten_outcomes_sensor, instance, defs.resources, due.cursor)
    assert again.run_requests == []

    job = defs.resolve_job_def("crm_writeback")
    assert job.execute_in_process(partition_key=OEM, instance=instance).success
    assert store.get(proven.job_id).state is S.CRM_UPDATED
    assert crm.get_case(proven.case_id).reference == proven.reference


# ---------------------------------------------------------------- reaper


def test_the_reaper_takes_back_expired_leases(
    defs: Definitions, instance: DagsterInstance, store: JobStore
):
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    before = store.enqueue(make_case(1), now=long_ago).job_id
    store.claim("dead-worker", oem=OEM, lease_s=60, now=long_ago)
    after = store.enqueue(make_case(2), now=long_ago).job_id
    store.claim("dead-worker-2", oem=OEM, lease_s=60, now=long_ago)
    store.record_milestone(after, "dead-worker-2", Step.SUBMIT_CLICKED, now=long_ago)

    skip = tick(lease_reaper_sensor, instance, defs.resources)
    assert "reaped 2" in skip.skip_message
    assert store.get(before).state is S.QUEUED  # never reached the submit click
    assert store.get(after).state is S.NEEDS_RECONCILIATION  # may be on the portal

    quiet = tick(lease_reaper_sensor, instance, defs.resources)
    assert quiet.skip_message == "no expired leases"


# ---------------------------------------------------------------- failed runs


def test_a_failed_run_dead_letters_its_leased_jobs_and_raises_an_alert(
    resources, instance: DagsterInstance, store: JobStore
):
    # The CRM is unreachable: crm_cases fails, and so does the run.
    broken = {**resources, "crm": EmbeddedCrmResource(db_url="postgresql://nobody@127.0.0.1:1/x")}
    result = run_selection(broken, instance, AssetSelection.assets(crm_cases))
    assert not result.success
    run = result.dagster_run
    job_id = store.enqueue(make_case(1)).job_id
    store.claim(worker_id(run.run_id, OEM, 0), oem=OEM, run_id=run.run_id)

    with build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=run,
        resources={"job_store": resources["job_store"]},
    ).for_run_failure() as context:
        run_failure_alert_sensor(context)

    job = store.get(job_id)
    assert job.state is S.DEAD_LETTERED and job.reason_code is ReasonCode.WORKER_LOST
    assert run.run_id in job.failure.message
    [alert] = instance.fetch_observations(submission_runs.key, limit=1).records
    metadata = alert.asset_observation.metadata
    assert metadata["alert"].value == "run_failed" and metadata["dead_lettered"].value == 1
    assert alert.partition_key == OEM
