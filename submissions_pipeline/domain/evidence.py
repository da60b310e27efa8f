"""What proves a submission: the evidence manifest and the rule for when it is complete."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from submissions_pipeline.domain.job import Job

#: Evidence a successful submission must have; without it the job fails with missing evidence.
PRE_SUBMIT_SCREENSHOT = "pre_submit.png"
POST_CONFIRM_SCREENSHOT = "post_confirm.png"
REQUIRED_FOR_SUCCESS = (PRE_SUBMIT_SCREENSHOT, POST_CONFIRM_SCREENSHOT)
#: A reconciled job proves itself with the portal's lookup page instead of a confirmation.
LOOKUP_SCREENSHOT = "lookup.png"


class EvidenceItem(BaseModel):
    """One stored artifact, addressable and verifiable."""

    name: str
    key: str
    sha256: str
    size: int
    content_type: str


class EvidenceManifest(BaseModel):
    """Everything one attempt left behind, with hashes, so an auditor can verify it later."""

    job_id: str
    case_id: str
    oem: str
    attempt: int
    reference: str | None = None
    reconciled: bool = Field(False, description="Proven through the portal's lookup page.")
    items: list[EvidenceItem] = Field(default_factory=list)
    step_seconds: dict[str, float] = Field(default_factory=dict)
    captured_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def item(self, name: str) -> EvidenceItem | None:
        """The item with this name, if captured."""
        return next((i for i in self.items if i.name == name), None)

    def missing_for_success(self) -> list[str]:
        """What a successful submission still lacks: the reference and the required shots."""
        required = (LOOKUP_SCREENSHOT,) if self.reconciled else REQUIRED_FOR_SUCCESS
        missing = [n for n in required if self.item(n) is None]
        if not self.reference:
            missing.insert(0, "reference")
        return missing


def evidence_folder_date(job: Job) -> date:
    """The date folder of every attempt's evidence of `job`: the day it was enqueued. A job
    retried after midnight keeps all of its evidence under one prefix."""
    return job.created_at.date()
