"""How a job's state reads in the CRM: the one mapping from job outcomes to CRM write-backs."""

from __future__ import annotations

from submissions_pipeline.artifacts import ArtifactStore
from submissions_pipeline.crm import CrmStatus, CrmUpdate
from submissions_pipeline.domain import ErrorClass, Job, SubmissionState
from submissions_pipeline.domain.evidence import LOOKUP_SCREENSHOT, POST_CONFIRM_SCREENSHOT
from submissions_pipeline.store.operator import CRM_REPORTED_STATES

S = SubmissionState

#: Bundle manifest written beside each job's evidence by evidence_bundles.
BUNDLE_NAME = "bundle.json"


def evidence_item_key(job: Job, name: str) -> str | None:
    """Key of one named artifact of the job's proven attempt, from the store's manifest copy."""
    for item in (job.evidence or {}).get("items", []):
        if item.get("name") == name:
            return item.get("key")
    return None


def bundle_key(job: Job) -> str | None:
    """Where the job's bundle manifest lives: beside the attempt's evidence manifest."""
    manifest_key = (job.evidence or {}).get("manifest_key")
    if not manifest_key:
        return None
    return manifest_key.rsplit("/", 1)[0] + "/" + BUNDLE_NAME


def proof_url(job: Job, artifacts: ArtifactStore) -> str | None:
    """The link a person opens to see the proof: the job's page in the ops console.

    Never a file path or a presigned URL: the CRM keeps this link for good, and the console
    streams (or presigns) the confirmation or lookup screenshot at the moment of the click.
    """
    key = evidence_item_key(job, POST_CONFIRM_SCREENSHOT) or evidence_item_key(
        job, LOOKUP_SCREENSHOT
    )
    if key is None:
        return None
    return artifacts.job_link(job.job_id)


def failure_url(job: Job, artifacts: ArtifactStore) -> str | None:
    """The failed job's page in the ops console, where its failure screenshot, trace and step
    log are (stable, so re-posting a failure changes nothing); None without a failure."""
    if job.failure is None:
        return None
    return artifacts.job_link(job.job_id)


def outcome_update(job: Job, artifacts: ArtifactStore) -> CrmUpdate | None:
    """The CRM write-back a job's state calls for, or None while the job is still in flight.

    Proven submissions (evidence stored or CRM updated) read "submitted" with the reference,
    the proof link and submitted_by_automation. Terminal failures carry their failure object:
    invalid data goes back to a human with the field-level messages, dead letters read
    "needs attention" for ops, and any other terminal failure reads "failed". A job that may be
    on the portal without proof either way reads "needs review". Jobs that will be retried stay
    "in progress": humans see only final failures.
    """
    if job.state in (S.EVIDENCE_STORED, S.CRM_UPDATED):
        return CrmUpdate(
            case_id=job.case_id,
            job_id=job.job_id,
            status=CrmStatus.SUBMITTED,
            reference=job.reference,
            evidence_url=proof_url(job, artifacts),
            submitted_by_automation=True,
            attempt=job.attempt,
        )
    if job.state in CRM_REPORTED_STATES:
        failure = job.failure
        if job.state is S.NEEDS_REVIEW:
            status = CrmStatus.NEEDS_REVIEW
        elif job.state is S.DEAD_LETTERED:
            status = CrmStatus.NEEDS_ATTENTION
        elif failure is not None and failure.error_class is ErrorClass.INVALID_DATA:
            status = CrmStatus.INVALID_DATA
        else:
            status = CrmStatus.FAILED
        return CrmUpdate(
            case_id=job.case_id,
            job_id=job.job_id,
            status=status,
            reference=job.reference,
            evidence_url=failure_url(job, artifacts),
            failure=failure,
            field_errors=failure.field_errors if failure is not None else {},
            submitted_by_automation=bool(job.submitted_by_automation),
            attempt=job.attempt,
        )
    return None


def in_progress_update(job: Job) -> CrmUpdate:
    """What the CRM shows while the job is queued or running: in progress, with the job id."""
    return CrmUpdate(case_id=job.case_id, job_id=job.job_id, status=CrmStatus.IN_PROGRESS)


def needs_crm_sync(job: Job) -> bool:
    """Whether a terminal failure or a review has not been posted to the CRM since it began."""
    if job.state not in CRM_REPORTED_STATES:
        return False
    if job.crm_synced_at is None:
        return True
    return job.finished_at is not None and job.crm_synced_at < job.finished_at
