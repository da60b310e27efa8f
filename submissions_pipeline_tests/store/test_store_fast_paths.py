"""The store's one-statement transitions keep every promise of the locked, checked path.

On PostgreSQL a claim, milestone or transition is one data-modifying statement; on SQLite it is
a lock, a check and a write in one transaction. Both must return the job exactly as stored,
append exactly one event per change and refuse the same moves with the same errors.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy.engine import make_url

from submissions_pipeline.domain import (
    FailureObject,
    IllegalTransition,
    ReasonCode,
    Step,
    SubmissionState,
)
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.store import JobNotFound, JobStore, LeaseLost, StaleState
from submissions_pipeline_tests.conftest import ManualClock
from submissions_pipeline_tests.factories import LEGAL, job_in, make_case
from submissions_pipeline_tests.netfaults import ToggleProxy

S = SubmissionState
MILESTONES = (Step.LOGIN, Step.SEARCH, Step.FILL, Step.PRE_SUBMIT_EVIDENCE, Step.SUBMIT_CLICKED)
EVIDENCE = {"manifest_key": "dev/northwind/m.json", "items": [{"name": "a.png", "size": 3}]}


def _history(store: JobStore, job_id: str) -> list[tuple[str, S | None, S, str, str | None]]:
    return [(e.kind, e.from_state, e.to_state, e.actor, e.step) for e in store.events(job_id)]


def test_a_worker_lifecycle_returns_the_stored_job_and_logs_each_change_once(
    store: JobStore, clock: ManualClock
):
    job_id = store.enqueue(make_case(1)).job_id
    (job,) = store.claim("w1", lease_s=60, run_id="run-1")
    assert job == store.get(job_id)
    assert (job.state, job.attempt, job.lease_owner, job.run_id) == (S.RUNNING, 1, "w1", "run-1")
    assert job.lease_expires_at == clock.now + timedelta(seconds=60)
    version = job.version
    for step in MILESTONES:
        clock.advance(1)
        job = store.record_milestone(job_id, "w1", step, lease_s=120, detail={"n": step.value})
        assert job == store.get(job_id)
        assert job.version == version + 1 and job.last_step == step.value
        assert job.lease_expires_at == clock.now + timedelta(seconds=120)
        assert job.submit_attempted is step.reached_submit
        version = job.version
    job = store.transition(
        job_id,
        S.SUBMITTED,
        actor="w1",
        lease_owner="w1",
        step=Step.REFERENCE_PARSED.value,
        reference="NW-1",
        submitted_by_automation=True,
    )
    assert job == store.get(job_id)
    # sticky: a later step that is "before" the click in no way clears the flag
    job = store.record_milestone(job_id, "w1", Step.LOGIN)
    assert job.submit_attempted and job == store.get(job_id)
    job = store.transition(
        job_id,
        S.EVIDENCE_STORED,
        actor="w1",
        lease_owner="w1",
        step=Step.EVIDENCE_STORED.value,
        evidence=EVIDENCE,
        duration_s=1.5,
    )
    assert job == store.get(job_id)
    assert job.evidence == EVIDENCE and job.duration_s == 1.5 and job.reference == "NW-1"
    assert job.lease_owner is None and job.lease_expires_at is None
    store.record_step_timings(job_id, job.attempt, [("login", 0.5, True), ("fill", 0.25, False)])

    assert _history(store, job_id) == [
        ("transition", None, S.QUEUED, "crm", None),
        ("transition", S.QUEUED, S.RUNNING, "w1", "claimed"),
        *[("milestone", S.RUNNING, S.RUNNING, "w1", step.value) for step in MILESTONES],
        ("transition", S.RUNNING, S.SUBMITTED, "w1", "reference_parsed"),
        ("milestone", S.SUBMITTED, S.SUBMITTED, "w1", "login"),
        ("transition", S.SUBMITTED, S.EVIDENCE_STORED, "w1", "evidence_stored"),
    ]
    events = store.events(job_id)
    assert events[2].detail == {"n": "login"} and events[-1].detail == {}
    assert [
        (r["step"], r["seconds"], r["ok"], r["attempt"]) for r in store.step_timings(job_id)
    ] == [
        ("login", 0.5, True, 1),
        ("fill", 0.25, False, 1),
    ]


def test_a_transition_with_a_failure_object_returns_it_as_stored(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    failure = FailureObject.of(ReasonCode.SELECTOR_NOT_FOUND, "selector drifted", job_id=job_id)
    job = store.dead_letter(job_id, failure, actor="ops")
    assert job == store.get(job_id)
    assert job.failure == failure and job.reason_code is ReasonCode.SELECTOR_NOT_FOUND
    assert job.finished_at is not None and job.next_attempt_at is None
    last = store.events(job_id)[-1]
    assert (last.from_state, last.to_state, last.reason_code) == (
        S.QUEUED,
        S.DEAD_LETTERED,
        ReasonCode.SELECTOR_NOT_FOUND.value,
    )


def test_a_milestone_by_a_non_owner_is_lease_lost_and_writes_nothing(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("w1")
    before, events = store.get(job_id), store.events(job_id)
    with pytest.raises(LeaseLost):
        store.record_milestone(job_id, "w2", Step.SUBMIT_CLICKED)
    with pytest.raises(LeaseLost):
        store.transition(job_id, S.SUBMITTED, actor="w2", lease_owner="w2")
    assert store.get(job_id) == before and store.events(job_id) == events


def test_refusals_raise_the_first_failed_check_and_write_nothing(store: JobStore):
    queued = store.enqueue(make_case(1)).job_id
    running = store.enqueue(make_case(2)).job_id
    store.claim("w1", limit=2)
    store.transition(queued, S.QUEUED, actor="w1", lease_owner="w1")  # give one back
    before = {j: (store.get(j), store.events(j)) for j in (queued, running)}

    # a job out of lease is stale for a milestone, whoever asks
    with pytest.raises(StaleState):
        store.record_milestone(queued, "w1", Step.LOGIN)
    # the expected state is checked before the lease ...
    with pytest.raises(StaleState):
        store.transition(running, S.SUBMITTED, actor="x", expected_from=[S.QUEUED], lease_owner="x")
    # ... and the lease before the state machine
    with pytest.raises(LeaseLost):
        store.transition(running, S.CRM_UPDATED, actor="x", lease_owner="x")
    with pytest.raises(IllegalTransition):
        store.transition(running, S.CRM_UPDATED, actor="w1", lease_owner="w1")
    with pytest.raises(IllegalTransition):
        store.transition(queued, S.SUBMITTED, actor="ops", expected_from=(s for s in [S.QUEUED]))
    for job_id, (job, events) in before.items():
        assert store.get(job_id) == job and store.events(job_id) == events


def _refusal(
    from_state: S, holder: str | None, to_state: S, expected: list[S] | None, owner: str | None
) -> type[Exception] | None:
    """The caller checks, written out by hand, in the order the store applies them."""
    if expected is not None and from_state not in expected:
        return StaleState
    if owner is not None and (holder != owner or from_state not in LEASED_STATES):
        return LeaseLost
    if (from_state, to_state) not in LEGAL:
        return IllegalTransition
    return None


def test_every_caller_check_refuses_exactly_what_the_rules_say(store: JobStore):
    for from_state in S:
        other = S.DEAD_LETTERED if from_state is not S.DEAD_LETTERED else S.QUEUED
        job_id = job_in(store, from_state)
        start, history = store.get(job_id), store.events(job_id)
        for to_state in S:
            for expected in (None, [from_state], [other], [other, from_state]):
                for owner in (None, "w1", "w2"):
                    refusal = _refusal(from_state, start.lease_owner, to_state, expected, owner)
                    move = {"actor": "t", "expected_from": expected, "lease_owner": owner}
                    if refusal is not None:
                        with pytest.raises(refusal):
                            store.transition(job_id, to_state, **move)
                        continue
                    # none of the refusals tried on this job wrote anything
                    assert store.get(job_id) == start and store.events(job_id) == history
                    job = store.transition(job_id, to_state, **move)
                    assert job == store.get(job_id)
                    assert (job.state, job.version) == (to_state, start.version + 1)
                    events = store.events(job_id)
                    assert events[:-1] == history
                    assert (events[-1].from_state, events[-1].to_state) == (from_state, to_state)
                    job_id = job_in(store, from_state)
                    start, history = store.get(job_id), store.events(job_id)
        assert store.get(job_id) == start and store.events(job_id) == history


def test_an_unknown_job_is_not_found(store: JobStore):
    with pytest.raises(JobNotFound):
        store.record_milestone("nope", "w1", Step.LOGIN)
    with pytest.raises(JobNotFound):
        store.transition("nope", S.DEAD_LETTERED, actor="ops")
    assert store.events() == []


def test_a_claim_of_several_returns_and_logs_them_in_pick_order(
    store: JobStore, clock: ManualClock
):
    plain = store.enqueue(make_case(1)).job_id
    clock.advance(1)
    sensitive = store.enqueue(make_case(2, redaction_sensitive=True)).job_id
    clock.advance(1)
    urgent = store.enqueue(make_case(3, priority=9)).job_id
    other_oem = store.enqueue(make_case(4, oem="aurora", priority=9)).job_id
    claimed = store.claim(
        "w1", limit=5, exclude_oems=["aurora"], prefer_redaction_sensitive=True, run_id="r"
    )
    assert [j.job_id for j in claimed] == [sensitive, urgent, plain]
    assert claimed == [store.get(j.job_id) for j in claimed]
    claims = [e.job_id for e in store.events() if e.to_state is S.RUNNING]
    assert claims == [sensitive, urgent, plain]
    assert store.get(other_oem).state is S.QUEUED
    assert store.claim("w2", oem="northwind") == []
    assert [j.job_id for j in store.claim("w2", oem="aurora")] == [other_oem]


def test_no_timings_write_nothing(store: JobStore):
    job_id = store.enqueue(make_case(1)).job_id
    store.record_step_timings(job_id, 1, [])
    assert store.step_timings(job_id) == []


# ------------------------------------------------------------------ PostgreSQL only


@pytest.fixture
def pg_store(pg_url: str):
    s = JobStore.from_url(pg_url)
    yield s
    s.dispose()


def _race(n: int, work) -> list[BaseException | object]:
    start = threading.Barrier(n)
    results: list[BaseException | object] = [None] * n

    def run(i: int) -> None:
        start.wait(timeout=30)
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_racing_transitions_on_one_job_let_exactly_one_through(pg_store: JobStore):
    job_id = pg_store.enqueue(make_case(1)).job_id
    pg_store.claim("w1")
    results = _race(
        8,
        lambda i: pg_store.transition(
            job_id, S.SUBMITTED, actor=f"t{i}", lease_owner="w1", reference=f"R-{i}"
        ),
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1
    assert all(isinstance(r, IllegalTransition) for r in results if r is not won[0])
    assert won[0] == pg_store.get(job_id)
    moves = [e for e in pg_store.events(job_id) if e.to_state is S.SUBMITTED]
    assert len(moves) == 1 and moves[0].actor == f"t{won[0].reference[2:]}"


def test_racing_milestones_are_serialised_and_none_is_lost(pg_store: JobStore):
    job_id = pg_store.enqueue(make_case(1)).job_id
    (job,) = pg_store.claim("w1")
    results = _race(
        8, lambda i: pg_store.record_milestone(job_id, "w1", Step.FILL, detail={"i": i})
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    assert sorted(r.version for r in results) == list(range(job.version + 1, job.version + 9))
    milestones = [e for e in pg_store.events(job_id) if e.kind == "milestone"]
    assert sorted(e.detail["i"] for e in milestones) == list(range(8))
    assert pg_store.get(job_id).version == job.version + 8


def test_racing_claimers_never_share_a_job(pg_store: JobStore):
    for n in range(40):
        pg_store.enqueue(make_case(n))
    results = _race(6, lambda i: [j.job_id for j in pg_store.claim(f"w{i}", limit=4)])
    claimed = [job_id for r in results for job_id in r]
    assert len(claimed) == len(set(claimed)) == 24
    claims = Counter(e.job_id for e in pg_store.events() if e.to_state is S.RUNNING)
    assert set(claims) == set(claimed) and set(claims.values()) == {1}


def test_a_dropped_connection_is_survived_without_a_double_write(pg_url: str):
    target = make_url(pg_url)
    proxy = ToggleProxy(target.port or 5432)
    store = JobStore.from_url(target.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
    try:
        job_id = store.enqueue(make_case(1)).job_id
        store.claim("w1")
        store.record_milestone(job_id, "w1", Step.LOGIN)
        proxy.down()  # the pooled connection dies under the store
        proxy.up()
        job = store.record_milestone(job_id, "w1", Step.SEARCH)
        assert job.last_step == Step.SEARCH.value
        proxy.down()
        proxy.up()
        job = store.transition(job_id, S.SUBMITTED, actor="w1", lease_owner="w1")
        assert job == store.get(job_id)
        assert [e.step for e in store.events(job_id) if e.kind == "milestone"] == [
            "login",
            "search",
        ]
        assert [e.to_state for e in store.events(job_id) if e.kind == "transition"] == [
            S.QUEUED,
            S.RUNNING,
            S.SUBMITTED,
        ]
    finally:
        store.dispose()
        proxy.close()
