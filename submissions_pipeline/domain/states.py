"""The job state machine: every state a submission job can be in and the legal moves."""

from __future__ import annotations

from enum import StrEnum


class SubmissionState(StrEnum):
    """Where a submission job stands; the one truth reports are built from (never timestamps)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUBMITTED = "submitted"
    EVIDENCE_STORED = "evidence_stored"
    CRM_UPDATED = "crm_updated"
    RETRY_SCHEDULED = "retry_scheduled"
    NEEDS_RECONCILIATION = "needs_reconciliation"
    NEEDS_REVIEW = "needs_review"
    FAILED_TERMINAL = "failed_terminal"
    DEAD_LETTERED = "dead_lettered"


S = SubmissionState

#: The legal transitions. Anything not listed raises IllegalTransition.
TRANSITIONS: dict[SubmissionState, frozenset[SubmissionState]] = {
    # A worker claims it; ops may cancel it (bad data found by a human) or dead-letter it.
    S.QUEUED: frozenset({S.RUNNING, S.FAILED_TERMINAL, S.DEAD_LETTERED}),
    S.RUNNING: frozenset(
        {
            S.SUBMITTED,  # confirmation seen and reference parsed (or found by lookup)
            S.RETRY_SCHEDULED,  # retryable failure before the submit click
            S.NEEDS_RECONCILIATION,  # submit clicked, outcome unknown
            S.NEEDS_REVIEW,  # the portal may hold it and its absence cannot be proven
            S.FAILED_TERMINAL,  # invalid data: back to a human through the CRM
            S.DEAD_LETTERED,  # adapter bug or retries exhausted
            S.QUEUED,  # lease given back (batch halted, worker reaped before submit)
        }
    ),
    S.SUBMITTED: frozenset(
        {
            S.EVIDENCE_STORED,
            # Evidence missing or upload failed: the portal has the submission, so the retry
            # reconciles through the lookup page instead of submitting again.
            S.RETRY_SCHEDULED,
            S.NEEDS_RECONCILIATION,  # worker died between the confirmation and the evidence
            S.NEEDS_REVIEW,  # evidence could not be re-proven through the portal in budget
            S.DEAD_LETTERED,
        }
    ),
    # The evidence check found the stored proof incomplete or corrupt: re-prove it through the
    # portal's lookup (retry), or park it when the attempt budget is spent.
    S.EVIDENCE_STORED: frozenset(
        {S.CRM_UPDATED, S.RETRY_SCHEDULED, S.NEEDS_RECONCILIATION, S.DEAD_LETTERED}
    ),
    S.RETRY_SCHEDULED: frozenset({S.RUNNING, S.DEAD_LETTERED, S.FAILED_TERMINAL}),
    # Claimed by a worker that looks the case up on the portal before anything else; ops may
    # also hand it to a human at once.
    S.NEEDS_RECONCILIATION: frozenset({S.RUNNING, S.DEAD_LETTERED, S.NEEDS_REVIEW}),
    # A human decides: the portal does not have it (re-drive: submit again), the portal has it
    # (recorded by hand with its reference), or the case is abandoned.
    S.NEEDS_REVIEW: frozenset({S.QUEUED, S.CRM_UPDATED, S.FAILED_TERMINAL}),
    S.CRM_UPDATED: frozenset(),
    S.FAILED_TERMINAL: frozenset(),
    # Ops re-drive a dead letter once the adapter is fixed, or record that a person submitted
    # the case by hand (with the portal's reference).
    S.DEAD_LETTERED: frozenset({S.QUEUED, S.CRM_UPDATED}),
}

#: States a worker may claim when due.
CLAIMABLE_STATES: frozenset[SubmissionState] = frozenset(
    {S.QUEUED, S.RETRY_SCHEDULED, S.NEEDS_RECONCILIATION}
)
#: States whose jobs are held under a worker's lease.
LEASED_STATES: frozenset[SubmissionState] = frozenset({S.RUNNING, S.SUBMITTED})
#: States no automatic process moves a job out of.
TERMINAL_STATES: frozenset[SubmissionState] = frozenset(
    {S.CRM_UPDATED, S.FAILED_TERMINAL, S.DEAD_LETTERED}
)
#: States waiting for a person's decision: automation never moves them, and they are not
#: failures (the case may well be on the portal).
HUMAN_STATES: frozenset[SubmissionState] = frozenset({S.NEEDS_REVIEW})
#: States the automation is done with, one way or the other.
SETTLED_STATES: frozenset[SubmissionState] = TERMINAL_STATES | HUMAN_STATES


class IllegalTransition(Exception):
    """A move the state machine forbids; raised before anything is written."""

    def __init__(self, job_id: str, from_state: SubmissionState, to_state: SubmissionState):
        super().__init__(f"job {job_id}: illegal transition {from_state} -> {to_state}")
        self.job_id = job_id
        self.from_state = from_state
        self.to_state = to_state


def is_legal(from_state: SubmissionState, to_state: SubmissionState) -> bool:
    """Whether the state machine allows moving from one state to another."""
    return to_state in TRANSITIONS[from_state]


def check_transition(job_id: str, from_state: SubmissionState, to_state: SubmissionState) -> None:
    """Raise IllegalTransition unless the move is legal."""
    if not is_legal(from_state, to_state):
        raise IllegalTransition(job_id, from_state, to_state)


class Step(StrEnum):
    """Milestones inside one attempt, in order; `last_step` tells what a dead worker did."""

    CLAIMED = "claimed"
    LOGIN = "login"
    RECONCILE = "reconcile"
    LOOKUP_MISSED = "lookup_missed"  # the portal's lookup did not show the case
    ABSENCE_PROVEN = "absence_proven"  # enough misses over the lag window: submit again
    SEARCH = "search"
    FILL = "fill"
    PRE_SUBMIT_EVIDENCE = "pre_submit_evidence"
    SUBMIT_CLICKED = "submit_clicked"
    CONFIRMED = "confirmed"
    REFERENCE_PARSED = "reference_parsed"
    EVIDENCE_STORED = "evidence_stored"
    CRM_UPDATED = "crm_updated"

    @property
    def reached_submit(self) -> bool:
        """True once the submit button may have been pressed: the portal may hold a submission."""
        return _STEP_ORDER.index(self) >= _STEP_ORDER.index(Step.SUBMIT_CLICKED)


_STEP_ORDER = list(Step)
