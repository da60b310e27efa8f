"""Checks and sensors run by Dagster write their webhook notifications once per occurrence."""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetSelection,
    DagsterInstance,
    build_run_status_sensor_context,
    build_sensor_context,
)

from submissions_pipeline.assets import crm_cases
from submissions_pipeline.assets.partitions import worker_id
from submissions_pipeline.resources import EmbeddedCrmResource
from submissions_pipeline.sensors import lease_reaper_sensor, run_failure_alert_sensor
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import OEM, check_result, run_checks, run_selection
from submissions_pipeline_tests.factories import make_case


def test_a_failing_queue_age_check_evaluated_again_emits_one_event(
    resources, instance: DagsterInstance, store: JobStore
):
    store.enqueue(make_case(1), now=datetime.now(UTC) - timedelta(hours=49))
    for _ in range(2):
        result = run_checks(resources, instance, "submission_runs")
        assert not check_result(result, "queue_age").passed
    events = [e for e in store.list_webhook_events() if e.event_type == "queue.age_exceeded"]
    assert len(events) == 1
    assert events[0].oem == "northwind" and events[0].data["due_now"] == 1


def test_a_passing_queue_age_check_emits_nothing(
    resources, instance: DagsterInstance, store: JobStore
):
    store.enqueue(make_case(1), now=datetime.now(UTC) - timedelta(hours=2))
    assert check_result(run_checks(resources, instance, "submission_runs"), "queue_age").passed
    assert [e.event_type for e in store.list_webhook_events()] == []


def _tick(sensor_def, instance: DagsterInstance, resources):
    with build_sensor_context(instance=instance, resources=resources) as context:
        return sensor_def(context)


def test_a_reaped_worker_is_announced_once_per_lost_attempt(
    resources, instance: DagsterInstance, store: JobStore
):
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    job_id = store.enqueue(make_case(1), now=long_ago).job_id
    store.claim("dead-worker", oem=OEM, lease_s=60, now=long_ago)
    for _ in range(2):
        _tick(lease_reaper_sensor, instance, resources)
    (event,) = [e for e in store.list_webhook_events() if e.event_type == "run.worker_lost"]
    assert event.event_id == f"run.worker_lost:{job_id}:1"
    assert event.data["jobs"][0]["job_id"] == job_id


def test_a_failed_run_announces_its_lost_jobs_and_their_dead_letters(
    resources, instance: DagsterInstance, store: JobStore
):
    broken = {**resources, "crm": EmbeddedCrmResource(db_url="postgresql://nobody@127.0.0.1:1/x")}
    result = run_selection(broken, instance, AssetSelection.assets(crm_cases))
    run = result.dagster_run
    job_id = store.enqueue(make_case(1)).job_id
    store.claim(worker_id(run.run_id, OEM, 0), oem=OEM, run_id=run.run_id)
    for _ in range(2):  # the sensor may see the same failure again
        with build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor",
            dagster_event=result.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=run,
            resources={"job_store": resources["job_store"]},
        ).for_run_failure() as context:
            run_failure_alert_sensor(context)
    types = sorted(e.event_type for e in store.list_webhook_events())
    assert types == ["job.dead_lettered", "run.worker_lost"]
    lost = store.get_webhook_event(f"run.worker_lost:{run.run_id}")
    assert lost is not None and lost.data["jobs"][0]["job_id"] == job_id
