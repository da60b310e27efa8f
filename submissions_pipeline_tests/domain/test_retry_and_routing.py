"""The retry budget and the routing of each error class, with a seeded RNG and a fixed clock."""

from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from submissions_pipeline.domain import (
    ErrorClass,
    FailureObject,
    ReasonCode,
    RetryPolicy,
    Route,
    SubmissionState,
    route_failure,
)
from submissions_pipeline_tests.factories import running_job as job

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def test_backoff_is_exponential_plus_two_to_ten_minutes_of_jitter():
    policy = RetryPolicy()
    # attempt 1 failed: 2 min backoff + 2..10 min jitter; attempt 2: 4 min + 2..10 min.
    assert policy.delay_bounds_s(1) == (240.0, 720.0)
    assert policy.delay_bounds_s(2) == (360.0, 840.0)
    rng = Random(7)
    for attempt in (1, 2):
        lo, hi = policy.delay_bounds_s(attempt)
        draws = [policy.delay_s(attempt, rng) for _ in range(2000)]
        assert lo <= min(draws) and max(draws) <= hi
        # the jitter really spreads retries over the window, not a point
        assert max(draws) - min(draws) > 0.9 * (hi - lo)


def test_seeded_schedule_is_exact():
    policy = RetryPolicy()
    expected = Random(42).uniform(120, 600) + 120
    assert policy.next_attempt_at(1, NOW, Random(42)) == NOW + timedelta(seconds=expected)


def test_three_attempts_then_dead_letter():
    policy = RetryPolicy()
    rng = Random(1)
    first = route_failure(ReasonCode.SITE_HTTP_5XX, job(1), NOW, policy, rng)
    second = route_failure(ReasonCode.SITE_TIMEOUT, job(2), NOW, policy, rng)
    third = route_failure(ReasonCode.SITE_HTTP_5XX, job(3), NOW, policy, rng)
    assert first.next_state is second.next_state is SubmissionState.RETRY_SCHEDULED
    assert NOW + timedelta(minutes=4) <= first.next_attempt_at <= NOW + timedelta(minutes=12)
    assert third.route is Route.DEAD_LETTER and third.alert


def test_time_scale_shrinks_delays_for_the_soak():
    lo, hi = RetryPolicy(time_scale=0.01).delay_bounds_s(1)
    assert (lo, hi) == pytest.approx((2.4, 7.2))


@pytest.mark.parametrize(
    ("reason", "route", "state", "alert", "halt"),
    [
        (ReasonCode.SITE_HTTP_5XX, Route.RETRY, SubmissionState.RETRY_SCHEDULED, False, False),
        (ReasonCode.WORKER_LOST, Route.RETRY, SubmissionState.RETRY_SCHEDULED, False, False),
        (
            ReasonCode.SELECTOR_NOT_FOUND,
            Route.DEAD_LETTER,
            SubmissionState.DEAD_LETTERED,
            True,
            False,
        ),
        (
            ReasonCode.PORTAL_VALIDATION,
            Route.RETURN_TO_CRM,
            SubmissionState.FAILED_TERMINAL,
            False,
            False,
        ),
        (ReasonCode.LOGIN_REJECTED, Route.RETRY, SubmissionState.RETRY_SCHEDULED, True, True),
        (
            ReasonCode.SUBMIT_OUTCOME_UNKNOWN,
            Route.RECONCILE,
            SubmissionState.NEEDS_RECONCILIATION,
            False,
            False,
        ),
        (ReasonCode.EVIDENCE_MISSING, Route.RETRY, SubmissionState.RETRY_SCHEDULED, False, False),
    ],
)
def test_each_error_class_is_routed(reason, route, state, alert, halt):
    d = route_failure(reason, job(1), NOW, RetryPolicy(), Random(0))
    assert (d.route, d.next_state, d.alert, d.halt_oem_batch) == (route, state, alert, halt)


def test_every_reason_code_has_a_class_and_failure_object_round_trips():
    for reason in ReasonCode:
        assert isinstance(reason.error_class, ErrorClass)
    f = FailureObject.of(ReasonCode.REFERENCE_UNPARSED, "no match", screenshot_url="s3://x/y.png")
    again = FailureObject.model_validate_json(f.model_dump_json())
    assert again == f and again.error_class is ErrorClass.ADAPTER_BUG


def test_ambiguous_submit_is_looked_up_after_a_short_delay_not_retried():
    d = route_failure(ReasonCode.SUBMIT_OUTCOME_UNKNOWN, job(3), NOW, RetryPolicy(), Random(0))
    # even on the last attempt: the portal may hold it, so only a lookup decides
    assert d.route is Route.RECONCILE
    assert d.next_attempt_at == NOW + timedelta(minutes=2)


def test_a_job_the_portal_may_hold_keeps_reconciling_through_flakes_then_asks_a_person():
    policy = RetryPolicy()
    rng = Random(3)
    for lookups in range(1, 5):
        held = job(1, lookups, submit_attempted=True)
        d = route_failure(ReasonCode.SITE_HTTP_5XX, held, NOW, policy, rng)
        assert d.next_state is SubmissionState.NEEDS_RECONCILIATION and not d.alert
        assert d.next_attempt_at > NOW  # with backoff, like any retry
    # the default policy allows 2 lookups that miss and 3 that fail: then a person decides,
    # never a dead letter that a re-drive would submit blind, never a resubmission
    last = route_failure(ReasonCode.SITE_HTTP_5XX, job(1, 5, True), NOW, policy, rng)
    assert last.route is Route.REVIEW and last.next_state is SubmissionState.NEEDS_REVIEW
    # an adapter bug is still an adapter bug
    bug = route_failure(ReasonCode.SELECTOR_NOT_FOUND, job(1, 1, True), NOW, policy, rng)
    assert bug.next_state is SubmissionState.DEAD_LETTERED


def test_lookups_do_not_spend_the_retry_budget():
    # three claims that only looked the case up, one try: a flake is retried, not dead-lettered
    d = route_failure(ReasonCode.SITE_TIMEOUT, job(1, 3), NOW, RetryPolicy(), Random(0))
    assert d.route is Route.RETRY
