"""submission_runs reports the OEM's jobs at risk: the count, and the first ids in claim order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dagster import AssetSelection

from submissions_pipeline.assets.submission_runs import submission_runs
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import DRY_RUN, metadata_of, run_selection
from submissions_pipeline_tests.factories import make_case


def test_the_run_lists_jobs_that_will_miss_their_due_date_first_in_line_first(
    resources, instance, sqlite_url
):
    store = JobStore.from_url(sqlite_url)
    now = datetime.now(UTC)
    # 25 already overdue, most overdue first; in a dry run nothing is claimed, so all stay late.
    overdue = [
        store.enqueue(make_case(n, due_date=now - timedelta(hours=30 - n))).job_id
        for n in range(1, 26)
    ]
    store.enqueue(make_case(26, due_date=now + timedelta(days=30)))  # plenty of time
    store.enqueue(make_case(27))  # no due date
    store.enqueue(make_case(28, oem="aurora", due_date=now - timedelta(hours=1)))  # not this OEM

    result = run_selection(
        resources, instance, AssetSelection.assets(submission_runs), run_config=DRY_RUN
    )

    assert result.success
    runs = metadata_of(result, "submission_runs")
    assert runs["jobs_at_risk"] == 25
    assert runs["at_risk_job_ids"] == overdue[:20]
    store.dispose()


def test_a_run_with_every_due_date_in_reach_reports_none(resources, instance, sqlite_url):
    store = JobStore.from_url(sqlite_url)
    store.enqueue(make_case(1, due_date=datetime.now(UTC) + timedelta(days=1)))
    store.enqueue(make_case(2))

    result = run_selection(
        resources, instance, AssetSelection.assets(submission_runs), run_config=DRY_RUN
    )

    runs = metadata_of(result, "submission_runs")
    assert (runs["jobs_at_risk"], runs["at_risk_job_ids"]) == (0, [])
    store.dispose()
