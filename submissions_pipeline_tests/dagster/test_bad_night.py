"""A night with faults is visible in Dagster: the runs list, the error budget, the failures.

Through real Chromium against a sandbox portal that answers every page with HTTP 503: every
attempt fails and is scheduled for a retry, so no job is finished, yet the run must not look
like a good night anywhere in Dagster.
"""

from pathlib import Path

import pytest
from dagster import AssetCheckSeverity, AssetSelection, DagsterInstance

from sandbox import SandboxServer
from submissions_pipeline.assets.job_metrics import markdown_text
from submissions_pipeline.assets.submission_runs import (
    ATTEMPTS_TAG,
    ERROR_BUDGET_TAG,
    FAILED_ATTEMPTS_TAG,
)
from submissions_pipeline.crm import EmbeddedCrm
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.domain import SubmissionState
from submissions_pipeline.links import DEFAULT_CONSOLE_URL
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import (
    DRY_RUN,
    OEM,
    check_result,
    make_resources,
    metadata_of,
    run_selection,
)
from submissions_pipeline_tests.factories import case_record

S = SubmissionState


@pytest.mark.browser
def test_a_night_of_retry_scheduled_failures_is_over_budget_tagged_and_readable(
    sqlite_url: str,
    tmp_path: Path,
    worker_home: Path,
    sandbox: SandboxServer,
    sandbox_credentials: Path,
    instance: DagsterInstance,
):
    crm = EmbeddedCrm.from_url(sqlite_url)
    for n in (1, 2):
        crm.add_case(case_record(n, oem=OEM))
    sandbox.configure(OEM, error_rate=1.0)
    resources = make_resources(
        sqlite_url,
        tmp_path / "artifacts",
        worker_home=worker_home,
        portal_urls=sandbox.urls,
        credentials_file=sandbox_credentials,
    )
    job = build_definitions(resources).resolve_job_def("submissions_nightly")

    result = job.execute_in_process(partition_key=OEM, instance=instance, raise_on_error=False)

    store = JobStore.from_url(sqlite_url)
    jobs = store.list_jobs(oem=OEM)
    assert {j.state for j in jobs} == {S.RETRY_SCHEDULED}  # nothing finished: 0 of 0 before

    # The runs list: the run carries its attempt and failure counts.
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags[ATTEMPTS_TAG] == "2" and tags[FAILED_ATTEMPTS_TAG] == "2"
    assert tags[ERROR_BUDGET_TAG] == "exceeded"

    # The error budget counted the retry-scheduled attempts and fails as an error.
    budget = check_result(result, "error_budget")
    assert not budget.passed and budget.severity is AssetCheckSeverity.ERROR
    assert budget.metadata["run_failed_attempts"].value == 2
    assert budget.metadata["run_attempts"].value == 2
    assert budget.description.startswith("this run: 2 of 2 attempts failed")

    # Each failure is readable in the metadata: reason, step, message, the console's job page.
    runs = metadata_of(result, "submission_runs")
    assert runs["failed_attempts"] == 2
    failures = runs["failures"]
    for j in jobs:
        assert f"{DEFAULT_CONSOLE_URL}/jobs/{j.job_id}" in failures
        assert j.failure is not None and j.failure.last_step
        for text in (j.reason_code.value, j.failure.last_step, j.failure.message):
            assert markdown_text(text) in failures  # the table escapes Markdown
    # ... and in the run log, with the link to open.
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    for j in jobs:
        line = next(m for m in logged if f"(job {j.job_id})" in m)
        assert j.reason_code.value in line and f"at step {j.failure.last_step}" in line
        assert f"{DEFAULT_CONSOLE_URL}/jobs/{j.job_id}#attempt-1" in line
    store.dispose()
    crm.dispose()


def test_plotted_numbers_are_per_oem_so_each_oem_draws_its_own_line(
    resources, instance: DagsterInstance
):
    for oem in ("northwind", "aurora"):
        result = run_selection(
            resources,
            instance,
            AssetSelection.assets("submission_runs"),
            oem=oem,
            run_config=DRY_RUN,
        )
        meta = metadata_of(result, "submission_runs")
        other = "aurora" if oem == "northwind" else "northwind"
        for name in ("attempts", "failed_attempts", "fail_rate", "p95_s", "jobs_per_hour"):
            assert f"{oem}/{name}" in meta
            assert f"{other}/{name}" not in meta
        assert meta[f"{oem}/attempts"] == meta["attempts"] == 0
