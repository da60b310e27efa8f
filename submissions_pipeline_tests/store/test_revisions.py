"""`revise_case`: a job takes its case's new version only while no worker holds it and it never
reached the submit click, as a compare-and-set with its event; otherwise it stays as it was."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from submissions_pipeline.domain import Case, FailureObject, ReasonCode, Step
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import VALID_VINS, case_record, job_in, make_case


def revised(n: int = 1, **overrides) -> Case:
    """Case n as entered again: another VIN and mileage (and whatever else is given)."""
    record = case_record(n, vin=VALID_VINS[(n + 3) % len(VALID_VINS)], **overrides)
    record["payload"]["mileage"] += 500
    return Case.model_validate(record)


def test_a_queued_job_takes_the_new_version_with_an_event(store: JobStore, clock):
    job_id = store.enqueue(make_case(1)).job_id
    before = store.get(job_id)
    new = revised(1, priority=4)
    clock.advance(30)

    job = store.revise_case(new, actor="intake")

    assert job.job_id == job_id and job.state is S.QUEUED
    assert job.idempotency_key == new.idempotency_key() != before.idempotency_key
    assert job.case() == new and job.version == before.version + 1
    assert job.updated_at == clock.now and job.attempt == 0
    event = store.events(job_id)[-1]
    assert (event.kind, event.from_state, event.to_state, event.actor) == (
        "revision",
        S.QUEUED,
        S.QUEUED,
        "intake",
    )
    assert event.detail == {
        "from_key": before.idempotency_key,
        "to_key": new.idempotency_key(),
        "fields": ["vin", "priority", "payload.mileage"],
    }
    [claimed] = store.claim("w1")
    assert claimed.case() == new  # the worker submits the new version
    assert store.enqueue(new).job_id == job_id  # and the case still has one job


def test_a_retry_that_never_reached_the_submit_click_takes_the_new_version(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("w1")
    store.record_failure(
        job_id, FailureObject.of(ReasonCode.SITE_HTTP_5XX, "503"), actor="w1", lease_owner="w1"
    )
    assert store.get(job_id).state is S.RETRY_SCHEDULED

    job = store.revise_case(revised(1), actor="intake")

    assert job.state is S.RETRY_SCHEDULED and job.case() == revised(1)


@pytest.mark.parametrize(
    "state",
    [S.RUNNING, S.SUBMITTED, S.EVIDENCE_STORED, S.CRM_UPDATED, S.NEEDS_RECONCILIATION],
)
def test_a_job_a_worker_holds_or_that_may_be_on_the_portal_keeps_its_version(
    store: JobStore, state
):
    before = store.get(job_in(store, state))
    vin = next(v for v in VALID_VINS if v != before.vin)

    job = store.revise_case(before.case().model_copy(update={"vin": vin}), actor="intake")

    assert job == before  # unchanged: the caller flags the case for a person
    assert "revision" not in [e.kind for e in store.events(before.job_id)]


def test_a_queued_job_that_reached_the_submit_click_before_keeps_its_version(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("w1")
    store.record_milestone(job_id, "w1", Step.SUBMIT_CLICKED)
    store.transition(job_id, S.DEAD_LETTERED, actor="w1")
    store.redrive(job_id, actor="ops")  # back in the queue, but the portal may hold it
    before = store.get(job_id)
    assert before.state is S.QUEUED and before.submit_attempted

    assert store.revise_case(revised(1), actor="intake") == before


def test_a_dead_letter_that_may_be_on_the_portal_still_answers_for_the_case(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("w1")
    store.record_milestone(job_id, "w1", Step.SUBMIT_CLICKED)
    store.transition(job_id, S.DEAD_LETTERED, actor="w1")

    job = store.revise_case(revised(1), actor="intake")

    assert job.job_id == job_id and job.case() == make_case(1)


@pytest.mark.parametrize("ending", [S.FAILED_TERMINAL, S.DEAD_LETTERED])
def test_a_case_whose_job_ended_off_the_portal_has_no_standing_job(store: JobStore, ending):
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("w1")
    store.transition(job_id, ending, actor="w1")
    assert store.revise_case(revised(1), actor="intake") is None
    assert store.revise_case(make_case(2), actor="intake") is None  # no job at all


def test_the_same_version_again_changes_nothing_and_a_rerun_is_harmless(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    assert store.revise_case(make_case(1), actor="intake") == store.get(job_id)
    first = store.revise_case(revised(1), actor="intake")
    again = store.revise_case(revised(1), actor="intake")  # e.g. re-run after a lost commit ack
    assert again == first
    assert [e.kind for e in store.events(job_id)] == ["transition", "revision"]


def test_a_version_another_job_already_stands_for_is_not_taken(store: JobStore):
    """A case reverted to a version that failed before: keys are unique, so the job keeps its
    version and the caller flags the case."""
    old = store.enqueue(make_case(1)).job_id
    store.claim("w1")
    store.record_failure(
        old, FailureObject.of(ReasonCode.PORTAL_VALIDATION, "x"), actor="w1", lease_owner="w1"
    )
    live = store.enqueue(revised(1)).job_id
    before = store.get(live)
    assert store.revise_case(make_case(1), actor="intake") == before


def _race(store: JobStore, oem: str, new: Case) -> tuple[list, object]:
    barrier = threading.Barrier(2)

    def claim() -> list:
        barrier.wait(timeout=30)
        return store.claim("w1", oem=oem)

    def revise() -> object:
        barrier.wait(timeout=30)
        return store.revise_case(new, actor="intake")

    with ThreadPoolExecutor(2) as pool:
        claimed, result = pool.submit(claim), pool.submit(revise)
        return claimed.result(timeout=60), result.result(timeout=60)


def test_a_revision_racing_a_claim_never_leaves_the_worker_with_another_version(
    store: JobStore,
):
    """Whoever wins, the worker submits exactly the version the store holds for the job."""
    for n in range(12):
        oem = f"race{n}"
        job_id = store.enqueue(make_case(100 + n, oem=oem)).job_id
        new = revised(100 + n, oem=oem)

        claimed, result = _race(store, oem, new)

        # On PostgreSQL a claim skips the row a revision holds: the next claim gets it.
        [worker_job] = claimed or store.claim("w1", oem=oem)
        stored = store.get(job_id)
        assert worker_job.idempotency_key == stored.idempotency_key
        took = result.idempotency_key == new.idempotency_key()
        assert took == (stored.idempotency_key == new.idempotency_key())
        assert [e.kind for e in store.events(job_id)].count("revision") == int(took)
