"""Checks and sensors run by Dagster write their webhook notifications once per occurrence."""

from datetime import UTC, datetime, timedelta

from dagster import DagsterInstance

from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import check_result, run_checks
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
