"""Pure business rules: cases, job states, reason codes, retry policy, failure objects.

Nothing here imports Dagster, Playwright, SQLAlchemy or anything of ours outside this package.
"""

from submissions_pipeline.domain.case import (
    Case,
    CaseValidationError,
    FieldError,
    SubmissionPayload,
    validate_case,
)
from submissions_pipeline.domain.failure import FailureObject
from submissions_pipeline.domain.job import Job, JobEvent
from submissions_pipeline.domain.reasons import (
    ErrorClass,
    ReasonCode,
    Route,
    RoutingDecision,
)
from submissions_pipeline.domain.reconciliation import ReconciliationPolicy
from submissions_pipeline.domain.retry import RetryPolicy
from submissions_pipeline.domain.routing import route_failure
from submissions_pipeline.domain.states import (
    CLAIMABLE_STATES,
    HUMAN_STATES,
    SETTLED_STATES,
    TERMINAL_STATES,
    IllegalTransition,
    Step,
    SubmissionState,
    check_transition,
    is_legal,
)

__all__ = [
    "CLAIMABLE_STATES",
    "HUMAN_STATES",
    "SETTLED_STATES",
    "TERMINAL_STATES",
    "Case",
    "CaseValidationError",
    "ErrorClass",
    "FailureObject",
    "FieldError",
    "IllegalTransition",
    "Job",
    "JobEvent",
    "ReasonCode",
    "ReconciliationPolicy",
    "RetryPolicy",
    "Route",
    "RoutingDecision",
    "Step",
    "SubmissionPayload",
    "SubmissionState",
    "check_transition",
    "is_legal",
    "route_failure",
    "validate_case",
]
