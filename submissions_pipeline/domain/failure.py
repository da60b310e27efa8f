"""The one compact failure object: what went wrong, where, and the links to look at."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from submissions_pipeline.domain.reasons import ErrorClass, ReasonCode


class FailureObject(BaseModel):
    """One JSON shape for a failure, used in the store, the CRM, alerts and Dagster metadata."""

    reason_code: ReasonCode
    error_class: ErrorClass
    last_step: str | None = None
    message: str = ""
    attempt: int = 0
    job_id: str | None = None
    case_id: str | None = None
    oem: str | None = None
    screenshot_url: str | None = None
    artifacts: dict[str, str] = Field(default_factory=dict, description="name -> key or link")
    field_errors: dict[str, str] = Field(
        default_factory=dict, description="field -> message, for invalid data"
    )
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of(cls, reason: ReasonCode, message: str = "", **fields: object) -> FailureObject:
        """Build a failure whose error class follows from its reason code."""
        return cls(reason_code=reason, error_class=reason.error_class, message=message, **fields)
