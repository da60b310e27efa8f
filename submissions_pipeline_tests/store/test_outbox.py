"""The transactional outbox: a job's notification exists if and only if its change committed,
and a check's notification exists once per occurrence however often the check runs."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from submissions_pipeline.domain import FailureObject, ReasonCode, Step, SubmissionState
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import job_in, make_case

S = SubmissionState


def events_of(store: JobStore, job_id: str) -> list[str]:
    return sorted(e.event_type for e in store.list_webhook_events(limit=500) if e.job_id == job_id)


@pytest.mark.parametrize("state", [S.SUBMITTED, S.NEEDS_REVIEW, S.FAILED_TERMINAL, S.DEAD_LETTERED])
def test_each_notifying_state_change_writes_exactly_one_event(store: JobStore, state):
    job_id = job_in(store, state)
    assert events_of(store, job_id) == [f"job.{state.value}"]
    (event,) = [e for e in store.list_webhook_events() if e.job_id == job_id]
    job = store.get(job_id)
    assert event.event_id == f"job-{job_id}.{job.version}"
    assert (event.oem, event.case_id, event.state) == (job.oem, job.case_id, state.value)


def test_other_changes_and_milestones_write_no_event(store: JobStore):
    job_id = store.enqueue(make_case(1, oem="quiet")).job_id
    store.claim("w1", oem="quiet")
    store.record_milestone(job_id, "w1", Step.LOGIN)
    store.transition(job_id, S.RETRY_SCHEDULED, actor="w1", lease_owner="w1")
    assert events_of(store, job_id) == []


def test_a_routed_failure_carries_its_failure_object(store: JobStore):
    job_id = store.enqueue(make_case(2, oem="bad")).job_id
    store.claim("w1", oem="bad")
    failure = FailureObject.of(ReasonCode.PORTAL_VALIDATION, "vin rejected", last_step="fill")
    store.record_failure(job_id, failure, actor="w1", lease_owner="w1")
    (event,) = [e for e in store.list_webhook_events() if e.job_id == job_id]
    assert event.event_type == "job.failed_terminal"
    assert event.failure["reason_code"] == "portal_validation"
    assert event.failure["message"] == "vin rejected"


def test_a_submission_carries_its_reference(store: JobStore):
    job_id = store.enqueue(make_case(3, oem="ok")).job_id
    store.claim("w1", oem="ok")
    store.transition(job_id, S.SUBMITTED, actor="w1", lease_owner="w1", reference="REF-1")
    (event,) = [e for e in store.list_webhook_events() if e.job_id == job_id]
    assert (event.event_type, event.reference) == ("job.submitted", "REF-1")


def _doom_writes_to(store: JobStore, table: str, job_id: str) -> None:
    """Make the database refuse one row of `table` for this job, inside the change's own
    transaction: what a crash or a constraint does halfway through a change."""
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER doom BEFORE INSERT ON {table} WHEN NEW.job_id = '{job_id}' "
                    "BEGIN SELECT RAISE(ABORT, 'doomed'); END"
                )
            )
        else:
            conn.execute(
                text(
                    f"ALTER TABLE {table} ADD CONSTRAINT doom "
                    f"CHECK (job_id <> '{job_id}') NOT VALID"
                )
            )


@pytest.mark.parametrize("failing_table", ["job_events", "webhook_events"])
@pytest.mark.parametrize("path", ["transition", "record_failure"])
def test_a_change_rolled_back_leaves_no_event_and_an_event_never_outlives_its_change(
    store: JobStore, failing_table, path
):
    job_id = store.enqueue(make_case(4, oem="doomed")).job_id
    store.claim("w1", oem="doomed")
    _doom_writes_to(store, failing_table, job_id)
    with pytest.raises(DBAPIError):
        if path == "transition":
            store.transition(job_id, S.FAILED_TERMINAL, actor="w1", lease_owner="w1")
        else:
            failure = FailureObject.of(ReasonCode.PORTAL_VALIDATION, "bad")
            store.record_failure(job_id, failure, actor="w1", lease_owner="w1")
    assert store.get(job_id).state is S.RUNNING
    assert events_of(store, job_id) == []


def test_a_check_evaluated_again_emits_no_second_event(store: JobStore, clock):
    assert store.record_notification("queue.age_exceeded", "northwind:job1", oem="northwind")
    clock.advance(60)
    assert not store.record_notification(
        "queue.age_exceeded", "northwind:job1", oem="northwind", data={"again": True}
    )
    events = store.list_webhook_events()
    assert [(e.event_id, e.data) for e in events] == [("queue.age_exceeded:northwind:job1", {})]


def test_an_api_request_and_its_nonce_commit_together(store: JobStore, clock):
    from datetime import timedelta

    from submissions_pipeline.store.api_requests import ReplayedRequest

    expires = clock.now + timedelta(minutes=5)
    first = store.record_api_request(
        client="crm", kind="run_now", oem="aurora", params={}, nonce="n1", nonce_expires_at=expires
    )
    with pytest.raises(ReplayedRequest):
        store.record_api_request(
            client="crm",
            kind="run_now",
            oem="aurora",
            params={},
            nonce="n1",
            nonce_expires_at=expires,
        )
    keyed = [
        store.record_api_request(
            client="crm",
            kind="run_now",
            oem="kestrel",
            params={"max_jobs": 2},
            nonce=f"k{n}",
            nonce_expires_at=expires,
            idempotency_key="same",
        )
        for n in range(2)
    ]
    assert first.created and [k.created for k in keyed] == [True, False]
    assert keyed[0].request_id == keyed[1].request_id
    requests = store.api_requests_after(0, kind="run_now")
    assert [r.request_id for r in requests] == [first.request_id, keyed[0].request_id]
    assert store.api_requests_after(requests[0].sequence) == requests[1:]
    clock.advance(301)  # the nonce has expired: the timestamp check alone refuses it now
    store.use_nonce("n1", clock.now + timedelta(minutes=5))
