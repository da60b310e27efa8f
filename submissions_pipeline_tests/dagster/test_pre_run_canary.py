"""The pre-run canary: before any worker claims, one browser walks a waiting case up to the
submit click; a portal that no longer matches the adapter stops the run with nothing claimed and
an alert naming the broken selector and its suggested patch. Real Chromium, sandbox portals."""

from pathlib import Path

import pytest
from dagster import DagsterInstance

from sandbox import SandboxServer
from submissions_pipeline.crm import EmbeddedCrm
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.domain import SubmissionState
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import OEM, make_resources
from submissions_pipeline_tests.factories import case_record

pytestmark = pytest.mark.browser


def test_a_broken_selector_stops_the_run_at_the_canary_with_no_case_attempted(
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
    sandbox.configure(OEM, renamed_texts={"review.submit": "Send the claim"})
    resources = make_resources(
        sqlite_url,
        tmp_path / "artifacts",
        worker_home=worker_home,
        portal_urls=sandbox.urls,
        credentials_file=sandbox_credentials,
    )
    job = build_definitions(resources).resolve_job_def("submissions_nightly")
    config = {
        "ops": {
            "submission_runs": {"ops": {"pre_run_canary": {"config": {"action_timeout_ms": 2000}}}}
        }
    }

    result = job.execute_in_process(
        partition_key=OEM, instance=instance, raise_on_error=False, run_config=config
    )

    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key.endswith("pre_run_canary")
    message = failure.step_failure_data.error.message
    assert "adapter bug" in message and "canary failed at fill (selector_not_found)" in message
    assert "missing selector {'role': 'button', 'name': 'Submit claim'}" in message
    assert 'suggested patch for northwind/selectors/v1.json: {"review": {"submit": ' in message
    assert '"name": "Send the claim"' in message
    store = JobStore.from_url(sqlite_url)
    jobs = store.list_jobs(oem=OEM)
    assert len(jobs) == 2 and sandbox.ledger(OEM) == []
    # Nothing was claimed: every job is still queued on its first try, with no attempt made.
    assert all(j.state is SubmissionState.QUEUED and j.attempt == 0 for j in jobs)
    assert all(store.step_timings(j.job_id) == [] for j in jobs)
    store.dispose()
    crm.dispose()
