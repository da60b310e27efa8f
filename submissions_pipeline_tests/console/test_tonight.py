"""The Tonight card tells a night of retries from a clean one."""

from datetime import UTC, datetime

from submissions_pipeline.console.views import tonight
from submissions_pipeline.domain import FailureObject, ReasonCode
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import make_case


def test_attempts_waiting_for_a_retry_count_as_failed_and_nothing_due_claims_no_clean_morning(
    sqlite_url: str,
):
    store = JobStore.from_url(sqlite_url)
    for n in (1, 2):
        job_id = store.enqueue(make_case(n)).job_id
        store.claim("w", oem="northwind")
        store.record_failure(
            job_id, FailureObject.of(ReasonCode.SITE_TIMEOUT, "slow"), actor="w", lease_owner="w"
        )

    [row] = tonight(store, {"northwind": oem_registry().settings("northwind")}, datetime.now(UTC))

    assert row.counts == {"retry_scheduled": 2}
    assert row.attempts == 2 and row.fail_rate == 1.0
    assert row.done_by_morning is None  # both cases came in after this morning's opening
    store.dispose()
