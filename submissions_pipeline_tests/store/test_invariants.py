"""Random operation sequences against the store keep its invariants (hypothesis)."""

from __future__ import annotations

from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from submissions_pipeline.domain import FailureObject, IllegalTransition, ReasonCode, Step
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.store import JobStore, LeaseLost, StaleState
from submissions_pipeline_tests.conftest import ManualClock
from submissions_pipeline_tests.factories import make_case

WORKERS = ["w1", "w2", "w3"]

op = st.one_of(
    st.tuples(st.just("enqueue"), st.integers(0, 7)),
    st.tuples(st.just("claim"), st.sampled_from(WORKERS), st.integers(1, 3)),
    st.tuples(st.just("milestone"), st.integers(0, 7), st.sampled_from(list(Step)[:7])),
    st.tuples(st.just("submitted"), st.integers(0, 7)),
    st.tuples(st.just("evidence"), st.integers(0, 7)),
    st.tuples(st.just("fail"), st.integers(0, 7), st.sampled_from(list(ReasonCode))),
    st.tuples(st.just("heartbeat"), st.integers(0, 7)),
    st.tuples(st.just("tick"), st.integers(1, 900)),
    st.tuples(
        st.just("reap"),
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(op, min_size=5, max_size=40))
def test_random_operations_keep_the_invariants(tmp_path_factory, ops):
    url = f"sqlite:///{tmp_path_factory.mktemp('inv') / 'jobs.db'}"
    clock = ManualClock()
    store = JobStore.from_url(url, clock=clock)
    enqueued: set[str] = set()
    rng = Random(0)

    def job_at(i: int):
        jobs = store.list_jobs()
        return jobs[i % len(jobs)] if jobs else None

    for o in ops:
        kind = o[0]
        job = job_at(o[1]) if kind not in ("enqueue", "claim", "tick", "reap") else None
        try:
            if kind == "enqueue":
                case = make_case(o[1])
                store.enqueue(case)
                enqueued.add(case.case_id)
            elif kind == "claim":
                store.claim(o[1], limit=o[2], lease_s=600)
            elif kind == "tick":
                clock.advance(o[1])
            elif kind == "reap":
                store.reap_expired()
            elif job is None:
                continue
            elif kind == "milestone":
                store.record_milestone(job.job_id, job.lease_owner or "nobody", o[2])
            elif kind == "submitted":
                store.transition(
                    job.job_id,
                    S.SUBMITTED,
                    actor="t",
                    lease_owner=job.lease_owner or "nobody",
                    reference="R-1",
                    submitted_by_automation=True,
                )
            elif kind == "evidence":
                store.transition(job.job_id, S.EVIDENCE_STORED, actor="t")
            elif kind == "fail":
                store.record_failure(
                    job.job_id,
                    FailureObject.of(o[2]),
                    actor="t",
                    lease_owner=job.lease_owner or "nobody",
                    rng=rng,
                )
            elif kind == "heartbeat":
                store.heartbeat(job.job_id, job.lease_owner or "nobody", lease_s=600)
        except (IllegalTransition, LeaseLost, StaleState):
            pass

    jobs = store.list_jobs()
    # no job lost, none duplicated: exactly one job per enqueued case
    assert sorted(j.case_id for j in jobs) == sorted(enqueued)
    events = store.events()
    for job in jobs:
        # one live lease per job, and only while the job is leased
        assert (job.lease_owner is not None) == (job.state in LEASED_STATES)
        # the events equal the transitions: replaying them gives the current state
        replay = None
        for e in (e for e in events if e.job_id == job.job_id and e.kind == "transition"):
            assert e.from_state == replay
            replay = e.to_state
        assert replay is job.state
        # a job that reached the submit click is never handed out for a blind retry
        if job.last_step and Step(job.last_step).reached_submit:
            assert job.submit_attempted
    store.dispose()
