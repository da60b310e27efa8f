"""A submission job as read from the store: one attempt history for one case."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from submissions_pipeline.domain.case import Case, SubmissionPayload
from submissions_pipeline.domain.failure import FailureObject
from submissions_pipeline.domain.reasons import ReasonCode
from submissions_pipeline.domain.states import SubmissionState


class Job(BaseModel):
    """The job row, typed. `submit_attempted` is sticky: once true, no retry may submit blind.

    `attempt` numbers every claim (evidence is kept per claim); `tries` counts the claims that
    could submit (the retry budget) and `lookup_claims` the ones that only looked a possibly
    submitted case up; `submit_clicks` counts every press of the portal's submit button.
    """

    job_id: str
    case_id: str
    oem: str
    dealer_id: str
    vin: str
    idempotency_key: str
    payload: SubmissionPayload
    priority: int = 0
    redaction_sensitive: bool = False
    test_record: bool = False
    due_at: datetime | None = None
    state: SubmissionState
    attempt: int = 0
    max_attempts: int = 3
    next_attempt_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    last_step: str | None = None
    submit_attempted: bool = False
    tries: int = 0
    lookup_claims: int = 0
    submit_clicks: int = 0
    last_submit_at: datetime | None = None
    lookup_misses: int = 0
    first_miss_at: datetime | None = None
    last_miss_at: datetime | None = None
    reason_code: ReasonCode | None = None
    failure: FailureObject | None = None
    reference: str | None = None
    submitted_by_automation: bool = False
    evidence: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = None
    duration_s: float | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    crm_synced_at: datetime | None = None
    version: int = 0

    def case(self) -> Case:
        """The case this job submits."""
        return Case(
            case_id=self.case_id,
            oem=self.oem,
            dealer_id=self.dealer_id,
            vin=self.vin,
            payload=self.payload,
            priority=self.priority,
            redaction_sensitive=self.redaction_sensitive,
            test_record=self.test_record,
            due_date=self.due_at,
        )


class JobEvent(BaseModel):
    """One row of the append-only history: a transition or a milestone, and who made it."""

    event_id: int
    job_id: str
    kind: str  # "transition", "milestone" or "revision" (a new version of the case)
    from_state: SubmissionState | None
    to_state: SubmissionState
    actor: str
    step: str | None = None
    reason_code: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    at: datetime
