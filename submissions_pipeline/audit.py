"""Finding damage already done: cases submitted more than once, given more than one reference,
or proven with data that is not the case's data. Read from the job store and the CRM only, so
an operator can check any past night after the fact."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel, Field

from submissions_pipeline.crm import CrmClient
from submissions_pipeline.crm.base import CaseNotFound
from submissions_pipeline.domain import CaseValidationError, Job, SubmissionState, validate_case
from submissions_pipeline.store import JobStore


class AuditFinding(BaseModel):
    """One case that needs a person: what was found and the evidence for it."""

    case_id: str
    oem: str
    kind: str = Field(description="more_than_one_click | more_than_one_reference | wrong_data")
    detail: str
    job_ids: list[str]


class AuditReport(BaseModel):
    """The cases examined and what was found."""

    cases: int
    jobs: int
    findings: list[AuditFinding]

    @property
    def clean(self) -> bool:
        """Whether nothing was found."""
        return not self.findings


def audit(
    store: JobStore, crm: CrmClient, *, oem: str | None = None, since: datetime | None = None
) -> AuditReport:
    """Check every case with jobs updated since `since` (all of them by default).

    - more than one press of a portal's submit button for one case (over all its jobs);
    - more than one reference given to one case (the job history keeps every reference);
    - a reference recorded for a job whose submitted data (its payload hash) differs from the
      case as the CRM holds it now (the portal may hold data that was never the case's).
    """
    jobs = store.list_jobs(oem=oem, updated_since=since)
    by_case: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_case[job.case_id].append(job)
    findings: list[AuditFinding] = []
    for case_id, case_jobs in sorted(by_case.items()):
        ids = [j.job_id for j in case_jobs]
        case_oem = case_jobs[0].oem
        clicks = sum(j.submit_clicks for j in case_jobs)
        if clicks > 1:
            findings.append(
                AuditFinding(
                    case_id=case_id,
                    oem=case_oem,
                    kind="more_than_one_click",
                    detail=f"{clicks} submit clicks over {len(case_jobs)} job(s)",
                    job_ids=ids,
                )
            )
        references = _references(store, case_jobs)
        if len(references) > 1:
            findings.append(
                AuditFinding(
                    case_id=case_id,
                    oem=case_oem,
                    kind="more_than_one_reference",
                    detail="references " + ", ".join(sorted(references)),
                    job_ids=ids,
                )
            )
        wrong = _proven_with_other_data(crm, case_id, case_jobs)
        if wrong:
            findings.append(
                AuditFinding(
                    case_id=case_id,
                    oem=case_oem,
                    kind="wrong_data",
                    detail="reference recorded for data that differs from the CRM's case: "
                    + ", ".join(f"{j.job_id} ({j.reference})" for j in wrong),
                    job_ids=[j.job_id for j in wrong],
                )
            )
    return AuditReport(cases=len(by_case), jobs=len(jobs), findings=findings)


def _references(store: JobStore, jobs: list[Job]) -> set[str]:
    found = {j.reference for j in jobs if j.reference}
    for job in jobs:
        for event in store.events(job.job_id):
            if event.to_state is SubmissionState.SUBMITTED and event.detail.get("reference"):
                found.add(str(event.detail["reference"]))
    return found


def _proven_with_other_data(crm: CrmClient, case_id: str, jobs: list[Job]) -> list[Job]:
    proven = [j for j in jobs if j.reference]
    if not proven:
        return []
    try:
        record = crm.get_case(case_id)
        current = validate_case(record.raw).idempotency_key()
    except (CaseNotFound, CaseValidationError):
        return proven  # a reference for a case the CRM no longer holds as valid: look at it
    return [j for j in proven if j.idempotency_key != current]
