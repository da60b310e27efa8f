"""What a new revision of a CRM case means for its job, decided at intake.

A case entered again with other content comes back through the feed marked `changed`. While its
job has not been handed to a worker and never reached the submit click, the job takes the new
version (`JobStore.revise_case`), or is withdrawn when the new version is invalid. Once the
claim is, or may be, on the portal, nothing is resubmitted: the CRM case is flagged as changed
after submission for a person to settle. A changed case is never dropped and never submitted
twice.
"""

from __future__ import annotations

from typing import Any

from submissions_pipeline.artifacts import ArtifactStore
from submissions_pipeline.assets.crm_outcomes import outcome_update
from submissions_pipeline.crm import ChangedAfterSubmission, CrmCaseRecord, CrmClient, CrmStatus
from submissions_pipeline.domain import (
    Case,
    FailureObject,
    Job,
    ReasonCode,
    SubmissionState,
)
from submissions_pipeline.store import JobNotFound, JobStore, StaleState

S = SubmissionState

#: Row notes in the crm_cases table: the queue has the new version; the job of the earlier one
#: was withdrawn (the new one is invalid); the case was flagged for a person.
REVISED = "revised"
WITHDRAWN = "withdrawn"
FLAGGED = "changed after submission"

#: States whose job may still take a new version, or be withdrawn, when it never reached the
#: submit click: no worker holds it.
_NOT_HANDED_OUT = (S.QUEUED, S.RETRY_SCHEDULED)
_PROVEN = (S.SUBMITTED, S.EVIDENCE_STORED, S.CRM_UPDATED)


def _ended_off_portal(job: Job) -> bool:
    """A job that ended without its claim reaching the portal: a new version is new work."""
    return job.state is S.FAILED_TERMINAL or (
        job.state is S.DEAD_LETTERED and not job.submit_attempted
    )


def late_change(
    record: CrmCaseRecord, job: Job | None, fields: dict[str, str]
) -> ChangedAfterSubmission:
    """The flag a case gets when its new revision arrived too late to change the claim."""
    if record.status is CrmStatus.HUMAN_SUBMITTED:
        where = f"after {record.submitted_by} submitted it by hand (reference {record.reference})"
    elif job is not None and job.state in _PROVEN:
        where = f"after it was submitted (job {job.job_id}, reference {job.reference})"
    elif job is not None:
        where = f"while it may already be on the portal (job {job.job_id} is {job.state.value})"
    else:  # pragma: no cover - only reached with a job or a human submission
        where = "after it was submitted"
    message = (
        f"Revision {record.revision} of this case arrived {where}. The portal has, or may have, "
        "the earlier version and the pipeline never submits a case twice: amend or withdraw the "
        "claim on the portal, then record the submission that stands."
    )
    return ChangedAfterSubmission(
        revision=record.revision,
        job_id=job.job_id if job else record.job_id,
        job_state=job.state.value if job else None,
        message=message,
        fields=fields,
    )


def _flag(
    crm: CrmClient, record: CrmCaseRecord, job: Job | None, fields: dict[str, str]
) -> dict[str, Any]:
    crm.flag_changed_after_submission(record.case_id, late_change(record, job, fields))
    return {
        "job_id": job.job_id if job else record.job_id,
        "job_state": job.state.value if job else None,
        # A case a person submitted keeps its status; the flag stands beside it.
        "crm_status": (
            record.status
            if record.status is CrmStatus.HUMAN_SUBMITTED
            else CrmStatus.NEEDS_ATTENTION
        ).value,
        "revision_note": FLAGGED,
    }


def flag_changed(crm: CrmClient, record: CrmCaseRecord, job: Job, case: Case) -> dict[str, Any]:
    """Flag a valid revision the job cannot take: each changed field says so."""
    fields = {
        f: "changed after submission: the portal has the earlier value"
        for f in job.case().changed_fields(case)
    }
    return _flag(crm, record, job, fields)


def take_valid_revision(
    record: CrmCaseRecord, case: Case, *, store: JobStore, crm: CrmClient, actor: str
) -> dict[str, Any] | None:
    """Give the case's job its new version, or flag the case; None: enqueue as usual."""
    if record.status is CrmStatus.HUMAN_SUBMITTED:
        return _flag(crm, record, None, {})
    job = store.revise_case(case, actor=actor)
    if job is None or job.idempotency_key == case.idempotency_key():
        return None
    return flag_changed(crm, record, job, case)


def take_invalid_revision(
    record: CrmCaseRecord,
    fields: dict[str, str],
    *,
    store: JobStore,
    crm: CrmClient,
    artifacts: ArtifactStore,
    actor: str,
) -> dict[str, Any] | None:
    """Withdraw the job of an earlier version that no worker has yet, or flag the case when the
    claim may be on the portal; None: return the case as invalid data as usual."""
    invalid = {f: f"invalid in the new revision: {m}" for f, m in fields.items()}
    if record.status is CrmStatus.HUMAN_SUBMITTED:
        return _flag(crm, record, None, invalid)
    job = _job_of(store, record)
    if job is None or _ended_off_portal(job):
        return None
    if job.state in _NOT_HANDED_OUT and not job.submit_attempted:
        failure = FailureObject.of(
            ReasonCode.CASE_INVALID,
            f"revision {record.revision} of case {record.case_id!r} is invalid; the job of the "
            "earlier version was withdrawn before it was submitted",
            case_id=record.case_id,
            oem=job.oem,
            field_errors=fields,
        )
        try:
            job = store.transition(
                job.job_id,
                S.FAILED_TERMINAL,
                actor=actor,
                expected_from=job.state,
                reason_code=ReasonCode.CASE_INVALID,
                failure=failure,
            )
        except StaleState:
            job = store.get(job.job_id)  # a worker took it meanwhile: flag below
        else:
            if not job.submit_attempted:
                update = outcome_update(job, artifacts)
                assert update is not None
                crm.write_back(update.model_copy(update={"revision": record.revision}))
                store.mark_crm_synced(job.job_id, actor=actor)
                return {
                    "job_id": job.job_id,
                    "job_state": job.state.value,
                    "crm_status": update.status.value,
                    "revision_note": WITHDRAWN,
                }
    return _flag(crm, record, job, invalid)


def _job_of(store: JobStore, record: CrmCaseRecord) -> Job | None:
    """The job the CRM case points at (intake writes it back with the job id)."""
    if record.job_id is None:
        return None
    try:
        return store.get(record.job_id)
    except JobNotFound:
        return None
