"""The CRM case a job submits, validated with field-level messages a human can act on."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_VIN_CHARS = set("ABCDEFGHJKLMNPRSTUVWXYZ0123456789")  # ISO 3779: no I, O or Q


class SubmissionPayload(BaseModel):
    """The form data every portal asks for, in the CRM's own field names."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    repair_date: date
    mileage: int = Field(gt=0, lt=2_000_000)
    complaint: str = Field(min_length=10, max_length=2000)
    cause: str = Field(min_length=3, max_length=2000)
    correction: str = Field(min_length=3, max_length=2000)
    labor_hours: float = Field(gt=0, le=40)
    part_number: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{2,31}$")


class Case(BaseModel):
    """A case to submit to one OEM portal on behalf of one dealer."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    case_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    oem: str = Field(min_length=2, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    dealer_id: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{2,19}$")
    vin: str
    payload: SubmissionPayload
    priority: int = Field(0, ge=0, le=9, description="Higher is claimed first.")
    redaction_sensitive: bool = False
    test_record: bool = False

    @field_validator("vin", mode="before")
    @classmethod
    def _vin(cls, v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError("VIN is required")
        vin = v.strip().upper()
        if len(vin) != 17:
            raise ValueError(f"VIN must be 17 characters, got {len(vin)}")
        bad = sorted(set(vin) - _VIN_CHARS)
        if bad:
            raise ValueError(f"VIN has characters not allowed in a VIN: {''.join(bad)}")
        return vin

    def idempotency_key(self) -> str:
        """Same case and same submitted content give the same key; a changed payload is new work."""
        body = json.dumps(
            {
                "case_id": self.case_id,
                "oem": self.oem,
                "dealer_id": self.dealer_id,
                "vin": self.vin,
                "payload": self.payload.model_dump(mode="json"),
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(body.encode()).hexdigest()


class FieldError(BaseModel):
    """One problem with one field, phrased for the person who fixes the case in the CRM."""

    field: str
    message: str


class CaseValidationError(ValueError):
    """A CRM record that cannot become a Case; carries every field-level problem at once."""

    def __init__(self, case_id: str | None, errors: list[FieldError]):
        self.case_id = case_id
        self.errors = errors
        super().__init__(
            f"case {case_id or '?'} is invalid: "
            + "; ".join(f"{e.field}: {e.message}" for e in errors)
        )

    def as_dict(self) -> dict[str, str]:
        """field -> message, the shape the CRM and the failure object carry."""
        return {e.field: e.message for e in self.errors}


def validate_case(record: dict[str, Any]) -> Case:
    """Turn a raw CRM record into a Case or raise CaseValidationError with every field's problem."""
    try:
        return Case.model_validate(record)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "record"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "is required"
            errors.append(FieldError(field=loc, message=msg))
        case_id = record.get("case_id") if isinstance(record, dict) else None
        raise CaseValidationError(str(case_id) if case_id else None, errors) from None
