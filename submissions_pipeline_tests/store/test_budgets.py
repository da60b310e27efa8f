"""The store counts what the budgets need: tries apart from lookups, every submit click, and the
lookup misses since the last click; jobs already in flight get the same counts from history."""

from __future__ import annotations

from sqlalchemy import text

from submissions_pipeline.domain import ReasonCode, Step
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.failure import FailureObject
from submissions_pipeline.store import JobStore
from submissions_pipeline.store import migrate as migrations
from submissions_pipeline.store.engine import make_engine
from submissions_pipeline_tests.factories import make_case

PAYLOAD = make_case(1).payload.model_dump_json()


def _submit_and_lose_the_confirmation(store: JobStore, job_id: str) -> None:
    assert [j.job_id for j in store.claim("w1")] == [job_id]
    store.record_milestone(job_id, "w1", Step.SUBMIT_CLICKED)
    failure = FailureObject.of(ReasonCode.SUBMIT_OUTCOME_UNKNOWN, "504 after the click")
    store.record_failure(job_id, failure, actor="w1", lease_owner="w1")


def test_claims_count_tries_and_lookups_apart_and_clicks_are_counted(store: JobStore, clock):
    job_id = store.enqueue(make_case(1)).job_id
    _submit_and_lose_the_confirmation(store, job_id)
    job = store.get(job_id)
    assert (job.attempt, job.tries, job.lookup_claims, job.submit_clicks) == (1, 1, 0, 1)
    assert job.last_submit_at == clock.now and job.state is S.NEEDS_RECONCILIATION

    clock.advance(180)
    (looked,) = store.claim("w2")
    assert (looked.attempt, looked.tries, looked.lookup_claims) == (2, 1, 1)
    missed = store.record_milestone(job_id, "w2", Step.LOOKUP_MISSED)
    assert missed.lookup_misses == 1 and missed.first_miss_at == missed.last_miss_at == clock.now
    clock.advance(60)
    again = store.record_milestone(job_id, "w2", Step.LOOKUP_MISSED)
    assert again.lookup_misses == 2 and again.first_miss_at < again.last_miss_at == clock.now

    proven = store.record_milestone(job_id, "w2", Step.ABSENCE_PROVEN)
    assert proven.tries == 2  # the lookup claim goes on to submit: it is a try
    clicked = store.record_milestone(job_id, "w2", Step.SUBMIT_CLICKED)
    assert clicked.submit_clicks == 2 and clicked.lookup_misses == 0
    assert clicked.first_miss_at is None and clicked.last_miss_at is None


def test_a_second_reference_stays_in_the_history(store: JobStore):
    job_id = store.enqueue(make_case(2)).job_id
    store.claim("w1")
    store.transition(job_id, S.SUBMITTED, actor="w1", lease_owner="w1", reference="NW-1")
    (event,) = [e for e in store.events(job_id) if e.to_state is S.SUBMITTED]
    assert event.detail["reference"] == "NW-1"


def test_jobs_in_flight_when_the_counts_arrive_get_them_from_their_history(db_url: str):
    engine = make_engine(db_url)
    migrations.upgrade(engine, "0002")
    old = JobStore(engine)  # the queries of today on a schema of yesterday: write events by hand
    job_id = "job-in-flight"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (job_id, case_id, oem, dealer_id, vin, idempotency_key, payload,"
                " priority, redaction_sensitive, test_record, state, attempt, max_attempts,"
                " submit_attempted, submitted_by_automation, created_at, updated_at, version)"
                " VALUES (:id, 'C-1', 'northwind', 'D-1', '1HGCM82633A004352', 'k', :p, 0,"
                " false, false, 'needs_reconciliation', 4, 3, true, false, :t, :t, 9)"
            ),
            {"id": job_id, "t": "2026-11-20 01:00:00+00:00", "p": PAYLOAD},
        )
        history = [
            ("transition", None, "queued", None),
            ("transition", "queued", "running", "claimed"),
            ("milestone", "running", "running", "submit_clicked"),
            ("transition", "running", "needs_reconciliation", None),
            ("transition", "needs_reconciliation", "running", "claimed"),  # a lookup
            ("milestone", "running", "running", "submit_clicked"),  # a miss, submitted again
            ("transition", "running", "needs_reconciliation", None),
            ("transition", "needs_reconciliation", "running", "claimed"),  # a lookup
            ("transition", "running", "retry_scheduled", None),
            ("transition", "retry_scheduled", "running", "claimed"),  # a lookup
            ("transition", "running", "needs_reconciliation", None),
        ]
        for n, (kind, src, dst, step) in enumerate(history):
            conn.execute(
                text(
                    "INSERT INTO job_events (job_id, kind, from_state, to_state, actor, step,"
                    " detail, at) VALUES (:id, :k, :f, :t, 'w', :s, '{}', :at)"
                ),
                {
                    "id": job_id,
                    "k": kind,
                    "f": src,
                    "t": dst,
                    "s": step,
                    "at": f"2026-11-20 01:{n:02d}:00+00:00",
                },
            )
    migrations.upgrade(engine)
    job = old.get(job_id)
    # two claims submitted (the second after a lookup miss), three looked the case up
    assert (job.tries, job.lookup_claims, job.submit_clicks) == (2, 3, 2)
    assert job.last_submit_at is not None and job.last_submit_at.minute == 5
    engine.dispose()
