"""The CrmClient interface the pipeline depends on, and the models that cross it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, model_validator

from submissions_pipeline.domain import FailureObject


class CrmStatus(StrEnum):
    """Where a case stands in the CRM: what the dealer's staff see on the case."""

    NEW = "new"
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"
    INVALID_DATA = "invalid_data"  # a human must fix the case; field_errors say where
    FAILED = "failed"
    # Dead-lettered, or changed after it was submitted: a person must look before anything else.
    NEEDS_ATTENTION = "needs_attention"
    NEEDS_REVIEW = "needs_review"  # may be on the portal: a person checks it before anything else
    HUMAN_SUBMITTED = "human_submitted"


#: Statuses only the CRM's own paths set: new (creation, test-record reset) and human_submitted
#: (record_human_submission). The pipeline's write-back never sets them.
NOT_WRITABLE_BY_AUTOMATION = frozenset({CrmStatus.NEW, CrmStatus.HUMAN_SUBMITTED})


class CrmError(Exception):
    """Base of the CRM clients' own errors."""


class CaseNotFound(CrmError, KeyError):
    """No case with that id in the CRM."""


class InvalidCursor(CrmError, ValueError):
    """A cursor this CRM never handed out."""


class InvalidCrmRecord(CrmError, ValueError):
    """A record the CRM cannot hold at all (no case_id or no OEM to route it by).

    Anything else may be wrong with a record; that is for `validate_case` to report.
    """


class NotATestRecord(CrmError, ValueError):
    """Only test records may be reset: resetting a real case would resubmit a real claim."""


class CrmConflict(CrmError):
    """The update contradicts what a human already recorded (e.g. a case submitted by hand)."""


class CrmRecordRejected(CrmConflict):
    """The CRM refused this one record (a validation rule, a field it does not take).

    Like a conflict it needs a person, and like a conflict it stops nothing else: the outcome
    stays pending in the job store and the rest of the batch is written.
    """

    def __init__(self, case_id: str, code: str, message: str, fields: Collection[str] = ()):
        self.case_id, self.code, self.fields = case_id, code, list(fields)
        super().__init__(f"case {case_id}: {code} on {', '.join(self.fields) or '-'}: {message}")


class CrmUnavailable(CrmError):
    """The CRM cannot be reached or refuses every call for now (API limit, 5xx, network)
    beyond the client's backoff budget: nothing of the call was lost, try again later."""


class CrmWriteResult(BaseModel):
    """One record's result in a batch write: changed, unchanged, or refused with a reason."""

    case_id: str
    changed: bool = False
    error: str | None = Field(
        None, description="Why the CRM refused the record (conflict, not_found, or its code)."
    )
    message: str | None = None
    fields: list[str] = Field(default_factory=list, description="The fields it refused.")

    @property
    def ok(self) -> bool:
        return self.error is None


class ChangedAfterSubmission(BaseModel):
    """A new version of a case that arrived once its claim was, or may have been, submitted.

    The portal holds (or may hold) the earlier version and the pipeline never submits a case
    twice, so a person must amend or withdraw the claim on the portal.
    """

    revision: int = Field(description="The case revision that arrived too late.")
    job_id: str | None = Field(description="The job that submitted (or may have) the case.")
    job_state: str | None = None
    message: str
    fields: dict[str, str] = Field(
        default_factory=dict, description="field -> what the portal has instead"
    )


class CrmCaseRecord(BaseModel):
    """A case as the CRM holds it: the raw, possibly invalid record plus the CRM's own fields.

    The pipeline validates `raw` with `submissions_pipeline.domain.validate_case`; nothing here
    assumes the record is valid.
    """

    case_id: str
    oem: str
    raw: dict[str, Any] = Field(description="The record as entered, validated by the pipeline.")
    sequence: int = Field(description="Position in the CRM's feed; a reset gives a new one.")
    cursor: str = Field(description="Opaque: pass to list_new_cases to resume after this case.")
    status: CrmStatus
    job_id: str | None = None
    reference: str | None = None
    evidence_url: str | None = None
    failure: FailureObject | None = None
    field_errors: dict[str, str] = Field(default_factory=dict)
    submitted_by_automation: bool = False
    submitted_by: str | None = None
    created_at: datetime
    updated_at: datetime
    revision: int = Field(1, description="1 as first entered; +1 per change of content.")
    changed: bool = Field(
        False, description="A newer revision waits for intake: the case is in the feed again."
    )
    changed_after_submission: ChangedAfterSubmission | None = None

    @property
    def test_record(self) -> bool:
        """Whether this is one of an integration's toggleable test records."""
        return self.raw.get("test_record") is True


class CasePage(BaseModel):
    """One read of the new-case feed; store `next_cursor` and pass it to the next read."""

    records: list[CrmCaseRecord]
    next_cursor: str | None = Field(
        description="Resume point after this page; the cursor given when the page is empty."
    )


class CrmUpdate(BaseModel):
    """What the pipeline writes back to a case: the full automation outcome, not a patch.

    Every field is set as given, so the same update written twice changes nothing the second
    time.
    """

    case_id: str
    job_id: str | None = None
    status: CrmStatus
    reference: str | None = None
    evidence_url: str | None = None
    failure: FailureObject | None = None
    field_errors: dict[str, str] = Field(
        default_factory=dict, description="field -> message, for invalid data"
    )
    submitted_by_automation: bool = False
    attempt: int | None = Field(
        None, description="The job's attempt this outcome came from (names its activity record)."
    )
    revision: int | None = Field(
        None,
        description="The case revision intake decided this on; answering the newest one takes "
        "the case out of the feed. Outcome write-backs leave it unset, so they never answer "
        "for a revision intake has not read.",
    )

    @model_validator(mode="after")
    def _automation_status(self) -> CrmUpdate:
        if self.status in NOT_WRITABLE_BY_AUTOMATION:
            raise ValueError(f"the pipeline cannot write status {self.status.value!r}")
        return self


class CrmActivity(BaseModel):
    """One row of a case's append-only activity log: who changed what, and when."""

    activity_id: int
    case_id: str
    kind: str = Field(
        description="case_revised, write_back, changed_after_submission, human_submission or "
        "test_record_reset"
    )
    actor: str
    job_id: str | None = None
    status: CrmStatus = Field(description="The case's status after this change.")
    changes: dict[str, Any] = Field(description="field -> {'from': old, 'to': new}")
    at: datetime


class CrmClient(ABC):
    """The CRM as the pipeline sees it: a feed of new cases in, outcomes written back."""

    @abstractmethod
    def list_new_cases(self, oem: str, cursor: str | None, limit: int = 500) -> CasePage:
        """Cases of one OEM in status new or changed since intake read them, strictly after
        `cursor`, in feed order (a new revision moves a case to the end of the feed)."""

    @abstractmethod
    def count_unrouted_cases(self, oems: Collection[str]) -> dict[str, int]:
        """Cases waiting in the feed (new or changed) whose OEM key is none of `oems`, counted
        by their exact key: the cases no per-OEM read of the feed will ever return."""

    @abstractmethod
    def get_case(self, case_id: str) -> CrmCaseRecord:
        """One case by id; raises CaseNotFound."""

    @abstractmethod
    def write_back(self, update: CrmUpdate) -> bool:
        """Write the pipeline's outcome to the case; True when something changed.

        Idempotent: writing the same update again changes nothing and logs nothing.
        """

    def write_back_many(self, updates: Sequence[CrmUpdate]) -> list[CrmWriteResult]:
        """Write several outcomes; one result per update, in order.

        A record the CRM refuses (a conflict, a validation rule) is reported in its result and
        stops none of the others; CrmUnavailable (nothing could be written for now) propagates.
        This default writes one at a time; a vendor client batches.
        """
        results = []
        for update in updates:
            try:
                results.append(
                    CrmWriteResult(case_id=update.case_id, changed=self.write_back(update))
                )
            except CrmRecordRejected as exc:
                results.append(
                    CrmWriteResult(
                        case_id=update.case_id, error=exc.code, message=str(exc), fields=exc.fields
                    )
                )
            except CrmConflict as exc:
                results.append(
                    CrmWriteResult(case_id=update.case_id, error="conflict", message=str(exc))
                )
            except CaseNotFound as exc:
                results.append(
                    CrmWriteResult(case_id=update.case_id, error="not_found", message=str(exc))
                )
        return results

    @abstractmethod
    def flag_changed_after_submission(self, case_id: str, flag: ChangedAfterSubmission) -> bool:
        """Record that a revision arrived after the case was (or may have been) submitted.

        The case reads needs attention until a person records what they did about it, whatever
        later outcomes are written back; answers for `flag.revision`. True when something
        changed.
        """

    @abstractmethod
    def record_human_submission(self, case_id: str, reference: str, by: str) -> bool:
        """Record that a person submitted the case by hand, or settled on the portal a case that
        changed after submission; True when something changed."""

    @abstractmethod
    def history(self, case_id: str) -> list[CrmActivity]:
        """The case's activity log, oldest first."""

    @abstractmethod
    def list_cases(
        self, *, oem: str | None = None, status: CrmStatus | None = None
    ) -> list[CrmCaseRecord]:
        """Every case (of an OEM, in a status), in feed order: for reports and reconciliation."""

    def accept_pushed_case(self, raw: dict[str, Any]) -> str:
        """Take a case a CRM pushed (the API's `POST /v1/cases`) into this CRM's intake feed,
        where it is validated like a polled one; returns its case id.

        Raises InvalidCrmRecord for a record the CRM cannot file at all. A CRM the pipeline only
        polls does not override this, and the API answers such a push with 501.
        """
        raise NotImplementedError(f"{type(self).__name__} does not accept pushed cases")
