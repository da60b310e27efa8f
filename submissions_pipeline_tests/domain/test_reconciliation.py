"""When misses on the portal's lookup prove a submission absent, and when they never can."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from submissions_pipeline.domain import ReasonCode, RetryPolicy, Route, SubmissionState
from submissions_pipeline.domain.reconciliation import (
    ReconciliationPolicy,
    absence_proven,
    next_lookup_at,
)
from submissions_pipeline.domain.routing import route_failure
from submissions_pipeline_tests.factories import running_job

CLICK = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
LAGGING = ReconciliationPolicy(search_lag_s=600, negative_lookups=2)


@dataclass
class History:
    last_submit_at: datetime | None = CLICK
    lookup_misses: int = 0
    first_miss_at: datetime | None = None
    last_miss_at: datetime | None = None
    lookup_claims: int = 1


def misses(*minutes_after_click: float) -> History:
    times = [CLICK + timedelta(minutes=m) for m in minutes_after_click]
    return History(
        lookup_misses=len(times),
        first_miss_at=times[0] if times else None,
        last_miss_at=times[-1] if times else None,
        lookup_claims=len(times),
    )


@pytest.mark.parametrize(
    ("history", "proven"),
    [
        (misses(2), False),  # one miss, and the index may trail by 10 minutes
        (misses(2, 5), False),  # two misses, both inside the lag window
        (misses(2, 12), True),  # two misses 10 minutes apart, the last after the window
        (misses(11, 12), False),  # after the window, but one minute apart: one flaky search?
        (misses(2, 9, 13), True),  # three misses, first and last 11 minutes apart
    ],
)
def test_two_misses_spread_over_the_lag_window_prove_absence(history: History, proven: bool):
    assert absence_proven(LAGGING, history) is proven


def test_a_portal_with_an_instant_index_is_proven_by_one_miss():
    instant = ReconciliationPolicy(search_lag_s=0, negative_lookups=1)
    assert absence_proven(instant, misses(2))
    assert not absence_proven(instant, misses())


def test_never_means_no_miss_ever_proves_anything():
    never = ReconciliationPolicy(proof="never")
    assert not absence_proven(never, misses(2, 60, 600))
    assert next_lookup_at(never, misses(2), CLICK) is None


def test_the_next_lookup_comes_when_the_window_lets_the_proof_complete():
    now = CLICK + timedelta(minutes=2)
    assert next_lookup_at(LAGGING, misses(2), now) == CLICK + timedelta(minutes=12)
    three = ReconciliationPolicy(search_lag_s=600, negative_lookups=3)
    assert next_lookup_at(three, misses(2), now) == CLICK + timedelta(minutes=7)
    # never before the window after the click has passed, however early the first miss
    assert next_lookup_at(three, misses(2, 7), now) == CLICK + timedelta(minutes=12)


def test_the_soaks_time_scale_shrinks_the_lag_window_too():
    fast = absence_proven(LAGGING, misses(2, 2.07), time_scale=0.005)  # 3 s of 600 s
    assert fast


def test_lookups_end_with_a_person_once_their_budget_is_spent():
    spent = History(lookup_misses=1, first_miss_at=CLICK, lookup_claims=LAGGING.lookup_budget)
    assert next_lookup_at(LAGGING, spent, CLICK) is None


def test_routing_looks_again_or_asks_a_person_never_resubmits():
    policy, rng = RetryPolicy(), Random(0)
    job = running_job(tries=1, lookup_claims=1, submit_attempted=True)
    job = job.model_copy(
        update={
            "last_submit_at": CLICK,
            "lookup_misses": 1,
            "first_miss_at": CLICK + timedelta(minutes=2),
            "last_miss_at": CLICK + timedelta(minutes=2),
        }
    )
    now = CLICK + timedelta(minutes=2)
    again = route_failure(ReasonCode.ABSENCE_UNPROVEN, job, now, policy, rng, LAGGING)
    assert again.route is Route.RECONCILE
    assert again.next_attempt_at == CLICK + timedelta(minutes=12)
    never = ReconciliationPolicy(proof="never")
    person = route_failure(ReasonCode.ABSENCE_UNPROVEN, job, now, policy, rng, never)
    assert person.route is Route.REVIEW and person.next_state is SubmissionState.NEEDS_REVIEW
    spent = route_failure(ReasonCode.RESUBMIT_BUDGET_SPENT, job, now, policy, rng, LAGGING)
    assert spent.next_state is SubmissionState.NEEDS_REVIEW
