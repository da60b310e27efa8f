"""The global pull queue: idempotent enqueue, ordered claims, leases, failures and reaping."""

from random import Random

from submissions_pipeline.domain import FailureObject, ReasonCode, RetryPolicy, Step
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import case_record, make_case


def test_enqueue_is_idempotent_by_case_and_payload(store: JobStore):
    first = store.enqueue(make_case(1))
    again = store.enqueue(make_case(1))
    assert first.created and not again.created and again.job_id == first.job_id
    assert len(store.list_jobs()) == 1
    assert len(store.events(first.job_id)) == 1


def test_a_live_case_never_gets_a_second_job_even_with_a_new_payload(store: JobStore):
    first = store.enqueue(make_case(1))
    changed = case_record(1)
    changed["payload"]["mileage"] = 99_999
    from submissions_pipeline.domain import Case

    second = store.enqueue(Case.model_validate(changed))
    assert second.job_id == first.job_id and not second.created


def test_a_case_fixed_after_a_terminal_failure_gets_a_new_job(store: JobStore):
    first = store.enqueue(make_case(1))
    store.claim("w")
    store.record_failure(
        first.job_id,
        FailureObject.of(ReasonCode.PORTAL_VALIDATION, "mileage"),
        actor="w",
        lease_owner="w",
    )
    fixed = case_record(1)
    fixed["payload"]["mileage"] = 12_345
    from submissions_pipeline.domain import Case

    second = store.enqueue(Case.model_validate(fixed))
    assert second.created and second.job_id != first.job_id


def test_claim_takes_priority_first_then_oldest_due(store: JobStore, clock):
    low_old = store.enqueue(make_case(1)).job_id
    clock.advance(10)
    low_new = store.enqueue(make_case(2)).job_id
    clock.advance(10)
    high = store.enqueue(make_case(3, priority=5)).job_id
    order = [j.job_id for j in store.claim("w", limit=10)]
    assert order == [high, low_old, low_new]
    assert store.claim("w", limit=10) == []


def test_claim_respects_oem_limit_and_due_time(store: JobStore, clock):
    a = store.enqueue(make_case(1, oem="northwind")).job_id
    store.enqueue(make_case(2, oem="aurora"))
    store.enqueue(make_case(3, oem="northwind"))
    got = store.claim("w", oem="northwind", limit=1)
    assert [j.job_id for j in got] == [a] and got[0].attempt == 1
    assert got[0].lease_owner == "w"
    # a retry scheduled in the future is not due yet
    store.record_failure(
        a, FailureObject.of(ReasonCode.SITE_TIMEOUT), actor="w", lease_owner="w", rng=Random(3)
    )
    assert a not in [j.job_id for j in store.claim("w2", oem="northwind", limit=5)]
    clock.advance(12 * 60 + 1)
    assert [j.job_id for j in store.claim("w3", oem="northwind", limit=5)] == [a]


def test_failures_retry_twice_then_dead_letter_with_the_failure_object(store: JobStore, clock):
    job_id = store.enqueue(make_case(1)).job_id
    policy = RetryPolicy()
    states = []
    for _ in range(3):
        clock.advance(15 * 60)
        (job,) = store.claim("w")
        store.record_milestone(job_id, "w", Step.SEARCH)
        job, _decision = store.record_failure(
            job_id,
            FailureObject.of(ReasonCode.SITE_HTTP_5XX, "503 on search"),
            actor="w",
            lease_owner="w",
            policy=policy,
            rng=Random(9),
        )
        states.append(job.state)
    assert states == [S.RETRY_SCHEDULED, S.RETRY_SCHEDULED, S.DEAD_LETTERED]
    final = store.get(job_id)
    assert final.attempt == 3 and final.reason_code is ReasonCode.SITE_HTTP_5XX
    assert final.failure.last_step == "search" and final.failure.attempt == 3
    assert final.failure.error_class == "site_flake"


def test_heartbeat_keeps_the_lease_and_reaper_spares_it(store: JobStore, clock):
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("w", lease_s=60)
    clock.advance(50)
    assert store.heartbeat(job_id, "w", lease_s=60)
    clock.advance(50)
    assert store.reap_expired() == []
    assert not store.heartbeat(job_id, "someone-else")


def test_dead_worker_before_submit_is_requeued(store: JobStore, clock):
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("w", lease_s=60)
    store.record_milestone(job_id, "w", Step.FILL)
    clock.advance(61)
    (reaped,) = store.reap_expired()
    assert reaped.state is S.QUEUED and reaped.lease_owner is None
    assert reaped.failure.reason_code is ReasonCode.WORKER_LOST
    assert [j.job_id for j in store.claim("w2")] == [job_id]


def test_dead_worker_after_submit_click_goes_to_reconciliation(store: JobStore, clock):
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("w", lease_s=60)
    store.record_milestone(job_id, "w", Step.SUBMIT_CLICKED)
    clock.advance(61)
    (reaped,) = store.reap_expired()
    assert reaped.state is S.NEEDS_RECONCILIATION and reaped.submit_attempted
    again = store.claim("w2")[0]
    assert again.submit_attempted  # the next worker knows to look the case up first


def test_worker_that_keeps_dying_ends_dead_lettered(store: JobStore, clock):
    job_id = store.enqueue(make_case(1)).job_id
    for _ in range(3):
        store.claim("w", lease_s=10)
        clock.advance(11)
        (reaped,) = store.reap_expired()
    assert reaped.state is S.DEAD_LETTERED and store.get(job_id).attempt == 3


def test_stats_show_depth_queue_age_and_job_time(store: JobStore, clock):
    for n in range(4):
        store.enqueue(make_case(n, oem="kestrel" if n % 2 else "northwind"))
    clock.advance(90)
    (job,) = store.claim("w", oem="northwind")
    store.transition(job.job_id, S.SUBMITTED, actor="w", duration_s=12.5)
    store.transition(job.job_id, S.EVIDENCE_STORED, actor="w")
    store.transition(job.job_id, S.CRM_UPDATED, actor="w")
    st = store.stats()
    assert st.depth == {"northwind": {"queued": 1, "crm_updated": 1}, "kestrel": {"queued": 2}}
    assert st.due_now == 3 and st.oldest_due_age_s == 90
    assert st.p50_job_s == 12.5 and st.p95_job_s == 12.5
    assert store.stats(oem="kestrel").depth == {"kestrel": {"queued": 2}}
