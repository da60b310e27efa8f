"""Due dates on jobs: carried from the case, and the claim order priority, due date, age.

Every test runs on SQLite and on PostgreSQL: both claim paths (PostgreSQL's one statement,
SQLite's transaction) and the capped claim must agree on which job is next.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from submissions_pipeline.domain.fleet import ConcurrencyCaps
from submissions_pipeline.store import JobStore
from submissions_pipeline.store import migrate as migrations
from submissions_pipeline.store.engine import make_engine
from submissions_pipeline_tests.conftest import ManualClock
from submissions_pipeline_tests.factories import make_case

DEC_1 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _queue(store: JobStore, clock: ManualClock) -> dict[str, str]:
    """Jobs enqueued oldest first, named by what should order them."""
    spec = [
        ("undated_oldest", 0, None),
        ("late", 0, "2026-12-03T00:00:00Z"),
        ("undated_newer", 0, None),
        ("soon", 0, "2026-11-27"),
        ("same_due_older", 0, "2026-12-01T09:30:00Z"),
        ("same_due_newer", 0, "2026-12-01T10:30:00+01:00"),  # the same instant
        ("urgent_undated", 5, None),
        ("urgent_dated", 5, "2026-12-20"),
    ]
    ids = {}
    for n, (name, priority, due) in enumerate(spec, start=1):
        extra = {} if due is None else {"due_date": due}
        ids[name] = store.enqueue(make_case(n, priority=priority, **extra)).job_id
        clock.advance(10)
    return ids


EXPECTED = [
    "urgent_dated",
    "urgent_undated",
    "soon",
    "same_due_older",
    "same_due_newer",
    "late",
    "undated_oldest",
    "undated_newer",
]


def test_claims_take_priority_then_earliest_due_date_then_age(store: JobStore, clock):
    ids = _queue(store, clock)
    names = {v: k for k, v in ids.items()}
    claimed = [names[j.job_id] for _ in range(3) for j in store.claim("w", limit=3)]
    assert claimed == EXPECTED


def test_the_capped_claim_keeps_the_same_order(store: JobStore, clock):
    ids = _queue(store, clock)
    names = {v: k for k, v in ids.items()}
    caps = {"northwind": ConcurrencyCaps(max_sessions=100)}
    claimed = [names[j.job_id] for j in store.claim("w", limit=10, caps=caps)]
    assert claimed == EXPECTED


def test_a_job_keeps_its_case_due_date_exactly(store: JobStore, clock):
    job_id = store.enqueue(make_case(1, due_date="2026-12-01T10:30:00+01:00")).job_id
    job = store.get(job_id)
    assert job.due_at == DEC_1 and job.due_at.utcoffset() == timedelta(0)
    assert job.case().due_date == DEC_1
    (claimed,) = store.claim("w")
    assert claimed.due_at == DEC_1
    undated = store.enqueue(make_case(2)).job_id
    assert store.get(undated).due_at is None


def test_a_queued_job_takes_the_due_date_of_its_case_s_next_revision(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    revised = make_case(1, due_date="2026-12-01T09:30:00Z", payload={**_payload(), "mileage": 7})
    job = store.revise_case(revised, actor="crm")
    assert job is not None and job.job_id == job_id and job.due_at == DEC_1


def _payload() -> dict:
    return make_case(1).payload.model_dump(mode="json")


def test_jobs_queued_before_due_dates_existed_have_none_and_are_claimed_after_dated_ones(
    db_url: str, clock: ManualClock
):
    engine = make_engine(db_url)
    migrations.upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (job_id, case_id, oem, dealer_id, vin, idempotency_key, payload,"
                " priority, redaction_sensitive, test_record, state, attempt, max_attempts,"
                " next_attempt_at, submit_attempted, submitted_by_automation, tries,"
                " lookup_claims, submit_clicks, lookup_misses, created_at, updated_at, version)"
                " VALUES ('old-job', 'C-OLD', 'northwind', 'D-1', '1HGCM82633A004352', 'k', :p,"
                " 0, false, false, 'queued', 0, 3, :t, false, false, 0, 0, 0, 0, :t, :t, 0)"
            ),
            {"t": "2026-11-20 01:00:00+00:00", "p": make_case(9).payload.model_dump_json()},
        )
    migrations.upgrade(engine)
    store = JobStore(engine, clock=clock)
    assert store.get("old-job").due_at is None
    dated = store.enqueue(make_case(1, due_date="2026-12-01")).job_id
    assert [j.job_id for j in store.claim("w", limit=2)] == [dated, "old-job"]
    engine.dispose()


def test_the_at_risk_jobs_are_the_due_ones_whose_queue_position_finishes_too_late(
    store: JobStore, clock: ManualClock
):
    """Positions count every due job ahead in claim order, dated or not; other OEMs' jobs and
    jobs already claimed take no place in the line."""
    now = clock()
    urgent = store.enqueue(make_case(1, priority=5)).job_id  # ahead of everything
    tight = store.enqueue(make_case(2, due_date=now + timedelta(minutes=1.5))).job_id
    roomy = store.enqueue(make_case(3, due_date=now + timedelta(hours=1))).job_id
    undated = store.enqueue(make_case(4)).job_id  # never at risk
    store.enqueue(make_case(5, oem="aurora", due_date=now))

    assert store.due_queue("northwind") == [
        (urgent, None),
        (tight, now + timedelta(minutes=1.5)),
        (roomy, now + timedelta(hours=1)),
        (undated, None),
    ]
    # tight is second: it finishes after 2 x 60 s on one context, 30 s past its due date
    assert store.at_risk("northwind", p95_s=60, concurrency=1) == [tight]
    assert store.at_risk("northwind", p95_s=60, concurrency=2) == []
    (first,) = store.claim("w", oem="northwind")  # urgent leaves the line: tight moves up
    assert first.job_id == urgent
    assert store.at_risk("northwind", p95_s=60, concurrency=1) == []
    clock.advance(3600)
    assert store.at_risk("northwind", p95_s=60, concurrency=1) == [tight, roomy]


def test_a_due_date_moved_in_the_crm_reaches_the_queued_job_and_reorders_the_queue(
    store: JobStore, clock: ManualClock
):
    first = store.enqueue(make_case(1)).job_id
    second = store.enqueue(make_case(2)).job_id
    moved = make_case(2, due_date="2026-12-01T09:30:00Z")  # same content, a new deadline

    job = store.revise_case(moved, actor="crm")

    assert job is not None and job.job_id == second and job.due_at == DEC_1
    assert job.idempotency_key == moved.idempotency_key()  # the same work, not a new version
    (event,) = [e for e in store.events(second) if e.kind == "revision"]
    assert event.detail == {"fields": ["due_date"]}
    assert store.revise_case(moved, actor="crm") == job  # again: nothing more
    assert len([e for e in store.events(second) if e.kind == "revision"]) == 1
    assert [j.job_id for j in store.claim("w", limit=2)] == [second, first]


def test_a_leased_job_keeps_its_due_date(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("w")
    job = store.revise_case(make_case(1, due_date="2026-12-01"), actor="crm")
    assert job is not None and job.job_id == job_id and job.due_at is None
    assert [e.kind for e in store.events(job_id)] == ["transition", "transition"]
