"""Reason codes, the error classes they belong to, and where each class of failure is routed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from submissions_pipeline.domain.states import SubmissionState


class ErrorClass(StrEnum):
    """Who has to act on a failure: the queue (retry), an engineer, a human in the CRM, or ops."""

    SITE_FLAKE = "site_flake"  # the portal misbehaved: retry with backoff
    INFRASTRUCTURE = "infrastructure"  # our side died (worker, storage): retry with backoff
    ADAPTER_BUG = "adapter_bug"  # our adapter no longer matches the portal: engineer, no retry
    INVALID_DATA = "invalid_data"  # the case is wrong: back to a human through the CRM
    AUTH_FAILURE = "auth_failure"  # credentials rejected: halt the OEM's batch, alert ops
    AMBIGUOUS_SUBMIT = "ambiguous_submit"  # submit clicked, outcome unknown: reconcile first
    MISSING_EVIDENCE = "missing_evidence"  # submitted but proof incomplete: retry via lookup
    HUMAN_REQUIRED = "human_required"  # a CAPTCHA, a single sign-on, a window: a person, review


class ReasonCode(StrEnum):
    """Structured, stable failure codes written to the store and the CRM for triage."""

    SITE_TIMEOUT = "site_timeout"
    SITE_HTTP_5XX = "site_http_5xx"
    SITE_PAGE_LOST = "site_page_lost"
    SITE_SESSION_EXPIRED = "site_session_expired"
    STEP_BUDGET_EXCEEDED = "step_budget_exceeded"
    WORKER_LOST = "worker_lost"
    BROWSER_CRASHED = "browser_crashed"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    SELECTOR_NOT_FOUND = "selector_not_found"
    REFERENCE_UNPARSED = "reference_unparsed"
    UNKNOWN_UI_VERSION = "unknown_ui_version"
    ADAPTER_ERROR = "adapter_error"
    CASE_INVALID = "case_invalid"
    PORTAL_VALIDATION = "portal_validation"
    LOGIN_REJECTED = "login_rejected"
    MFA_REJECTED = "mfa_rejected"
    SUBMIT_OUTCOME_UNKNOWN = "submit_outcome_unknown"
    ABSENCE_UNPROVEN = "absence_unproven"
    RESUBMIT_BUDGET_SPENT = "resubmit_budget_spent"
    EVIDENCE_MISSING = "evidence_missing"
    REFERENCE_MISSING = "reference_missing"
    HUMAN_REQUIRED = "human_required"

    @property
    def error_class(self) -> ErrorClass:
        """The class that decides routing."""
        return _CLASS_OF[self]


R, E = ReasonCode, ErrorClass
_CLASS_OF: dict[ReasonCode, ErrorClass] = {
    R.SITE_TIMEOUT: E.SITE_FLAKE,
    R.SITE_HTTP_5XX: E.SITE_FLAKE,
    R.SITE_PAGE_LOST: E.SITE_FLAKE,
    R.SITE_SESSION_EXPIRED: E.SITE_FLAKE,
    R.STEP_BUDGET_EXCEEDED: E.SITE_FLAKE,
    R.WORKER_LOST: E.INFRASTRUCTURE,
    R.BROWSER_CRASHED: E.INFRASTRUCTURE,
    R.STORAGE_UNAVAILABLE: E.INFRASTRUCTURE,
    R.SELECTOR_NOT_FOUND: E.ADAPTER_BUG,
    R.REFERENCE_UNPARSED: E.ADAPTER_BUG,
    R.UNKNOWN_UI_VERSION: E.ADAPTER_BUG,
    R.ADAPTER_ERROR: E.ADAPTER_BUG,
    R.CASE_INVALID: E.INVALID_DATA,
    R.PORTAL_VALIDATION: E.INVALID_DATA,
    R.LOGIN_REJECTED: E.AUTH_FAILURE,
    R.MFA_REJECTED: E.AUTH_FAILURE,
    R.SUBMIT_OUTCOME_UNKNOWN: E.AMBIGUOUS_SUBMIT,
    R.ABSENCE_UNPROVEN: E.AMBIGUOUS_SUBMIT,
    R.RESUBMIT_BUDGET_SPENT: E.AMBIGUOUS_SUBMIT,
    R.EVIDENCE_MISSING: E.MISSING_EVIDENCE,
    R.REFERENCE_MISSING: E.MISSING_EVIDENCE,
    R.HUMAN_REQUIRED: E.HUMAN_REQUIRED,
}


class Route(StrEnum):
    """What happens to a failed job."""

    RETRY = "retry"
    RECONCILE = "reconcile"
    REVIEW = "review"  # a person decides: the portal may hold the case
    RETURN_TO_CRM = "return_to_crm"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class RoutingDecision:
    """The outcome of routing one failure: next state, when to try again, and who to tell."""

    route: Route
    next_state: SubmissionState
    next_attempt_at: datetime | None
    alert: bool
    halt_oem_batch: bool
