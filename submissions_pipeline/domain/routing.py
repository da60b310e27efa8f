"""Where a failed attempt goes: retry, reconcile, review, back to the CRM, or dead letter.

Two budgets, kept apart so a lookup never costs a submission and a submission never hides
behind lookups: `tries` (claims that could submit: the retry budget, 3 by default) and
`lookup_claims` (claims that only looked a possibly-submitted case up on the portal).
"""

from __future__ import annotations

from datetime import datetime
from random import Random

from submissions_pipeline.domain.job import Job
from submissions_pipeline.domain.reasons import ErrorClass, ReasonCode, Route, RoutingDecision
from submissions_pipeline.domain.reconciliation import ReconciliationPolicy, next_lookup_at
from submissions_pipeline.domain.retry import RetryPolicy
from submissions_pipeline.domain.states import SubmissionState

S, E = SubmissionState, ErrorClass


def _decision(
    route: Route,
    state: SubmissionState,
    at: datetime | None = None,
    *,
    alert: bool = False,
    halt: bool = False,
) -> RoutingDecision:
    return RoutingDecision(route, state, at, alert, halt)


def route_failure(
    reason: ReasonCode,
    job: Job,
    now: datetime,
    policy: RetryPolicy,
    rng: Random,
    reconciliation: ReconciliationPolicy | None = None,
) -> RoutingDecision:
    """Decide where a failure of `job`'s current claim goes.

    Site flakes, infrastructure failures, missing evidence and auth failures of a job that was
    never submitted are retried with backoff until `tries` reaches the budget, then
    dead-lettered so a person sees only terminal failures. Adapter bugs are dead-lettered at
    once (retrying a broken selector only burns the budget) and raise an alert. Invalid data
    goes back to the CRM. A page that needs a person (a CAPTCHA, a single sign-on prompt, a
    window the portal opened) goes to review with an alert: a retry would meet it again.

    A job that may be on the portal (`submit_attempted`) is never retried blind: it is looked
    up again (an ambiguous submit after the portal's usual delay, a flake with backoff, a
    lookup that missed when the OEM's reconciliation policy says), and when the lookups run
    out, or the policy never trusts a miss, a person decides (`needs_review`).
    """
    reconciliation = reconciliation or ReconciliationPolicy()
    cls = reason.error_class
    if cls is E.INVALID_DATA:
        return _decision(Route.RETURN_TO_CRM, S.FAILED_TERMINAL)
    if cls is E.ADAPTER_BUG:
        return _decision(Route.DEAD_LETTER, S.DEAD_LETTERED, alert=True)
    if cls is E.HUMAN_REQUIRED:
        # The portal asks for a person (a CAPTCHA, a sign-on page): retrying asks again.
        return _decision(Route.REVIEW, S.NEEDS_REVIEW, alert=True)
    lookups_left = job.lookup_claims < reconciliation.lookup_budget
    if reason is ReasonCode.RESUBMIT_BUDGET_SPENT:
        # Proven absent, but every try is used: submitting again is a person's call.
        return _decision(Route.REVIEW, S.NEEDS_REVIEW)
    if reason is ReasonCode.ABSENCE_UNPROVEN:
        at = next_lookup_at(reconciliation, job, now, time_scale=policy.time_scale)
        if at is None:
            return _decision(Route.REVIEW, S.NEEDS_REVIEW)
        return _decision(Route.RECONCILE, S.NEEDS_RECONCILIATION, at)
    if cls is E.AMBIGUOUS_SUBMIT:
        if not lookups_left:
            return _decision(Route.REVIEW, S.NEEDS_REVIEW)
        return _decision(Route.RECONCILE, S.NEEDS_RECONCILIATION, policy.reconcile_at(now))
    halt = cls is E.AUTH_FAILURE
    if job.submit_attempted and cls in (E.SITE_FLAKE, E.INFRASTRUCTURE, E.MISSING_EVIDENCE):
        if not lookups_left:
            return _decision(Route.REVIEW, S.NEEDS_REVIEW)
        at = policy.next_attempt_at(job.lookup_claims or 1, now, rng)
        return _decision(Route.RECONCILE, S.NEEDS_RECONCILIATION, at)
    if not policy.may_retry(job.tries):
        return _decision(Route.DEAD_LETTER, S.DEAD_LETTERED, alert=True, halt=halt)
    at = policy.next_attempt_at(job.tries, now, rng)
    return _decision(Route.RETRY, S.RETRY_SCHEDULED, at, alert=halt, halt=halt)
