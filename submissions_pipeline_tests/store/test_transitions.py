"""Every legal and illegal move, made through the store on SQLite and PostgreSQL."""

import pytest

from submissions_pipeline.domain import IllegalTransition, Step, SubmissionState
from submissions_pipeline.store import JobStore, LeaseLost, StaleState
from submissions_pipeline_tests.factories import LEGAL, job_in, make_case

S = SubmissionState


@pytest.mark.parametrize("from_state", list(S))
def test_each_move_is_allowed_exactly_when_the_spec_says(store: JobStore, from_state):
    for to_state in S:
        job_id = job_in(store, from_state)
        before = store.get(job_id)
        events_before = len(store.events(job_id))
        if (from_state, to_state) in LEGAL:
            after = store.transition(job_id, to_state, actor="test")
            assert after.state is to_state
            assert after.version == before.version + 1
            last = store.events(job_id)[-1]
            assert (last.from_state, last.to_state, last.actor) == (from_state, to_state, "test")
        else:
            with pytest.raises(IllegalTransition):
                store.transition(job_id, to_state, actor="test")
            # nothing written: same row, no event
            assert store.get(job_id) == before
            assert len(store.events(job_id)) == events_before


def test_happy_path_writes_reference_flag_and_full_history(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    (_job,) = store.claim("worker-a")
    for step in (Step.LOGIN, Step.FILL, Step.PRE_SUBMIT_EVIDENCE, Step.SUBMIT_CLICKED):
        store.record_milestone(job_id, "worker-a", step)
    store.transition(
        job_id,
        S.SUBMITTED,
        actor="worker-a",
        lease_owner="worker-a",
        step=Step.REFERENCE_PARSED,
        reference="NW-2026-000001",
        submitted_by_automation=True,
    )
    store.transition(
        job_id,
        S.EVIDENCE_STORED,
        actor="worker-a",
        lease_owner="worker-a",
        evidence={"manifest": "k"},
    )
    done = store.transition(job_id, S.CRM_UPDATED, actor="crm-sync")
    assert done.reference == "NW-2026-000001" and done.submitted_by_automation
    assert done.submit_attempted and done.lease_owner is None and done.finished_at is not None
    kinds = [(e.kind, e.to_state, e.step) for e in store.events(job_id)]
    assert kinds[0] == ("transition", S.QUEUED, None)
    assert ("milestone", S.RUNNING, "submit_clicked") in kinds
    assert kinds[-1][1] is S.CRM_UPDATED


def test_only_the_lease_holder_may_move_a_leased_job(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("worker-a")
    with pytest.raises(LeaseLost):
        store.transition(job_id, S.SUBMITTED, actor="worker-b", lease_owner="worker-b")
    with pytest.raises(LeaseLost):
        store.record_milestone(job_id, "worker-b", Step.LOGIN)
    assert store.get(job_id).state is S.RUNNING


def test_compare_and_set_refuses_a_stale_expectation(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("worker-a")
    with pytest.raises(StaleState):
        store.transition(job_id, S.DEAD_LETTERED, actor="ops", expected_from=S.QUEUED)


def test_dead_letter_redrive_gives_a_fresh_budget(store: JobStore, clock):
    job_id = job_in(store, S.DEAD_LETTERED)
    job = store.redrive(job_id, actor="ops", note="selector fixed")
    assert job.state is S.QUEUED and job.tries == 0 and job.lookup_claims == 0
    # claims keep their numbers: the next claim's evidence never overwrites the last one's
    (claimed,) = store.claim("w")
    assert claimed.job_id == job_id and claimed.attempt == 2 and claimed.tries == 1
    assert store.events(job_id)[-2].detail == {"note": "selector fixed"}
