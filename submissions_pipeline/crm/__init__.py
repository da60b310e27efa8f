"""The CRM: the CrmClient interface the pipeline depends on and its embedded implementation."""

from submissions_pipeline.crm.base import (
    CaseNotFound,
    CasePage,
    ChangedAfterSubmission,
    CrmActivity,
    CrmCaseRecord,
    CrmClient,
    CrmConflict,
    CrmError,
    CrmRecordRejected,
    CrmStatus,
    CrmUnavailable,
    CrmUpdate,
    CrmWriteResult,
    InvalidCrmRecord,
    InvalidCursor,
    NotATestRecord,
)
from submissions_pipeline.crm.embedded import EmbeddedCrm
from submissions_pipeline.crm.seed import (
    MIN_PER_OEM,
    SANDBOX_OEMS,
    OemSeedCounts,
    SeedSummary,
    seed_demo_cases,
)

__all__ = [
    "MIN_PER_OEM",
    "SANDBOX_OEMS",
    "CaseNotFound",
    "CasePage",
    "ChangedAfterSubmission",
    "CrmActivity",
    "CrmCaseRecord",
    "CrmClient",
    "CrmConflict",
    "CrmError",
    "CrmRecordRejected",
    "CrmStatus",
    "CrmUnavailable",
    "CrmUpdate",
    "CrmWriteResult",
    "EmbeddedCrm",
    "InvalidCrmRecord",
    "InvalidCursor",
    "NotATestRecord",
    "OemSeedCounts",
    "SeedSummary",
    "seed_demo_cases",
]
