"""What people (ops, the review queue) and the CRM write-back do to jobs: park, re-drive, decide.

Each is a compare-and-set with its event, like every change; the actor and a note say who
decided and why, so the history reads as an audit trail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from submissions_pipeline.domain import FailureObject, Job, ReasonCode, Step, SubmissionState
from submissions_pipeline.store.errors import StaleState
from submissions_pipeline.store.models import _Change, _Locked
from submissions_pipeline.store.reconnect import reconnecting
from submissions_pipeline.store.statements import _allowed_from

S = SubmissionState

#: States whose failure object is posted to the CRM for a person.
CRM_REPORTED_STATES = frozenset({S.FAILED_TERMINAL, S.DEAD_LETTERED, S.NEEDS_REVIEW})

#: A fresh budget: no tries, no lookups, no misses counted against the job.
_FRESH_BUDGET = {
    "tries": 0,
    "lookup_claims": 0,
    "lookup_misses": 0,
    "first_miss_at": None,
    "last_miss_at": None,
}


class OperatorActions:
    """Changes made by people and by the CRM write-back, mixed into `JobStore`."""

    # Provided by JobStore / JobWrites.
    clock: Any
    _apply: Any
    _transition_values: Any
    _check_caller: Any
    transition: Any
    get: Any

    def _decide(
        self,
        job_id: str,
        from_state: SubmissionState,
        to_state: SubmissionState,
        *,
        actor: str,
        note: str,
        values: dict[str, Any],
        now: datetime | None,
        reason_code: ReasonCode | None = None,
    ) -> Job:
        now = now or self.clock()
        expected = frozenset({from_state})

        def check(row: _Locked) -> None:
            self._check_caller(row, expected, None)

        return self._apply(
            _Change(
                job_id=job_id,
                allowed=_allowed_from(to_state, expected, False),
                lease_owner=None,
                check=check,
                values=self._transition_values(to_state, now, None, reason_code, values),
                kind="transition",
                actor=actor,
                step=None,
                reason_code=reason_code,
                detail={"note": note[:1000]} if note else {},
                at=now,
            )
        )

    @reconnecting
    def mark_crm_synced(self, job_id: str, *, actor: str, now: datetime | None = None) -> Job:
        """Record that a failure or a review was posted to the CRM (the state does not change)."""
        now = now or self.clock()
        return self._reported_milestone(
            job_id,
            actor=actor,
            step=Step.CRM_UPDATED.value,
            values={"crm_synced_at": now, "updated_at": now},
            detail=None,
            now=now,
        )

    def dead_letter(
        self, job_id: str, failure: FailureObject, *, actor: str, now: datetime | None = None
    ) -> Job:
        """Park a job for a human with its reason (ops action or run-failure sensor)."""
        return self.transition(
            job_id,
            S.DEAD_LETTERED,
            actor=actor,
            reason_code=failure.reason_code,
            failure=failure.model_dump(mode="json"),
            now=now,
        )

    @reconnecting
    def redrive(
        self, job_id: str, *, actor: str, note: str = "", now: datetime | None = None
    ) -> Job:
        """Put a dead-lettered job back in the queue with a fresh budget.

        Claims keep their numbers (`attempt` goes on counting, so an earlier claim's evidence
        is never overwritten); a job that may be on the portal is still looked up first.
        """
        now = now or self.clock()
        return self._decide(
            job_id,
            S.DEAD_LETTERED,
            S.QUEUED,
            actor=actor,
            note=note,
            values={**_FRESH_BUDGET, "next_attempt_at": now},
            now=now,
        )

    @reconnecting
    def send_to_review(
        self, job_id: str, *, actor: str, note: str = "", now: datetime | None = None
    ) -> Job:
        """Hand a job waiting for a portal lookup to a person at once."""
        return self._decide(
            job_id,
            S.NEEDS_RECONCILIATION,
            S.NEEDS_REVIEW,
            actor=actor,
            note=note,
            values={"crm_synced_at": None},
            now=now,
        )

    @reconnecting
    def review_submit_again(
        self, job_id: str, *, actor: str, note: str, now: datetime | None = None
    ) -> Job:
        """A person checked the portal and it does not hold the case: submit it again.

        The one path that clears `submit_attempted`: the person's word is the proof of absence
        the lookups could not give.
        """
        now = now or self.clock()
        return self._decide(
            job_id,
            S.NEEDS_REVIEW,
            S.QUEUED,
            actor=actor,
            note=note or "not on the portal: submit again",
            values={**_FRESH_BUDGET, "submit_attempted": False, "next_attempt_at": now},
            now=now,
        )

    @reconnecting
    def review_submitted_by_hand(
        self,
        job_id: str,
        *,
        reference: str,
        actor: str,
        note: str = "",
        now: datetime | None = None,
    ) -> Job:
        """A person found (or made) the submission on the portal: record its reference.

        Open to jobs in review and to dead letters (the adapter broke, so a person submitted
        by hand). The caller writes the human submission to the CRM first; this closes the job.
        """
        current = self.get(job_id).state  # the compare-and-set below still guards the move
        return self._decide(
            job_id,
            S.DEAD_LETTERED if current is S.DEAD_LETTERED else S.NEEDS_REVIEW,
            S.CRM_UPDATED,
            actor=actor,
            note=note or f"submitted by hand: {reference}",
            values={"reference": reference, "submitted_by_automation": False},
            now=now,
        )

    @reconnecting
    def note_review(
        self, job_id: str, *, actor: str, note: str, now: datetime | None = None
    ) -> Job:
        """A person looked at a failed or parked job and says so (the state does not change)."""
        now = now or self.clock()
        return self._reported_milestone(
            job_id,
            actor=actor,
            step="reviewed",
            values={"updated_at": now},
            detail={"note": note[:1000]},
            now=now,
        )

    def _reported_milestone(
        self,
        job_id: str,
        *,
        actor: str,
        step: str,
        values: dict[str, Any],
        detail: dict[str, Any] | None,
        now: datetime,
    ) -> Job:
        """A milestone event on a failed or parked job (the state does not change); a job that
        left those states meanwhile is stale, so the note never lands on a job moved on."""
        states = frozenset(CRM_REPORTED_STATES)

        def check(row: _Locked) -> None:
            if row.state not in states:
                raise StaleState(f"job {job_id} is {row.state}, not a failure or a review")

        return self._apply(
            _Change(
                job_id=job_id,
                allowed=states,
                lease_owner=None,
                check=check,
                values=values,
                kind="milestone",
                actor=actor,
                step=step,
                reason_code=None,
                detail=detail,
                at=now,
            )
        )

    @reconnecting
    def review_abandon(
        self, job_id: str, *, actor: str, note: str, now: datetime | None = None
    ) -> Job:
        """A person closes the job without a submission (the case was withdrawn)."""
        return self._decide(
            job_id, S.NEEDS_REVIEW, S.FAILED_TERMINAL, actor=actor, note=note, values={}, now=now
        )
