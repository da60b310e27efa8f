"""The CRM case a job submits, validated with field-level messages a human can act on."""

from __future__ import annotations

import hashlib
import json
import re
import string
import unicodedata
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)

_VIN_CHARS = set("ABCDEFGHJKLMNPRSTUVWXYZ0123456789")  # ISO 3779: no I, O or Q
_CASE_ID_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
_OEM_KEY_CHARS = frozenset(string.ascii_lowercase + string.digits + "_")
_UPPER = frozenset(string.ascii_uppercase)
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _key_problem(value: str, allowed: frozenset[str], what: str) -> str | None:
    """Why `value` cannot be used as-is as a key (a case id, an OEM key), or None.

    Keys are never trimmed or rewritten: the CRM files a case under the exact text, so a key
    the pipeline normalised would name a different CRM record (or none), and two records that
    differ only in whitespace, control characters or Unicode form would become one job and one
    claim. Such a key is refused instead, with a message that says what is wrong with it.
    """
    if value != value.strip():
        return f"has leading or trailing whitespace ({value!r}); {what} is used exactly as entered"
    odd = [c for c in value if c.isspace() or unicodedata.category(c).startswith("C")]
    if odd:
        return f"contains whitespace or control characters ({odd[0]!r} in {value!r})"
    if not value.isascii():
        shown = unicodedata.normalize("NFKC", value)
        hint = f", which reads like {shown!r}" if shown != value and shown.isascii() else ""
        return (
            f"contains characters outside {what}'s alphabet ({value!a}{hint}); look-alike and "
            "differently encoded letters would make it a different key"
        )
    bad = sorted(set(value) - allowed)
    if bad:
        return f"contains characters not allowed in {what}: {''.join(bad)!r}"
    return None


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
    extra: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Fields one OEM's portal asks for beyond the common ones (e.g. a category), "
        "by name; an adapter's selector file binds them as payload.extra.<name>.",
    )

    @field_validator("extra")
    @classmethod
    def _extra_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in v if not k.isidentifier()]
        if bad:
            raise ValueError(f"extra field names must be identifiers: {bad}")
        return v

    @model_serializer(mode="wrap")
    def _without_empty_extra(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        # A payload without extra fields dumps as it always did: its idempotency key (a hash of
        # the dump) must not change for cases enqueued before extra fields existed.
        data = handler(self)
        if not data.get("extra"):
            data.pop("extra", None)
        return data


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
    due_date: datetime | None = Field(
        None,
        description="When the submission is due, in UTC; a date alone means by the end of that "
        "UTC day. Within a priority, earlier due dates are claimed first, cases without one last.",
    )

    @field_validator("due_date", mode="before")
    @classmethod
    def _due_date(cls, v: Any) -> Any:
        # A date alone is a deadline at the end of its day: the case is on time all that day.
        if isinstance(v, int | float):
            # Pydantic would read a number as a Unix timestamp: 20261201 would land in 1970.
            raise ValueError("must be a date (YYYY-MM-DD) or an ISO 8601 date-time, not a number")
        if isinstance(v, str):
            v = v.strip()
            if not v:
                return None
            if _DATE_ONLY.match(v):
                try:
                    v = date.fromisoformat(v)
                except ValueError as exc:
                    raise ValueError(f"is not a valid date ({v!r}): {exc}") from None
        if isinstance(v, date) and not isinstance(v, datetime):
            if v == date.max:
                raise ValueError("is too far in the future")
            return datetime.combine(v + timedelta(days=1), time(0), tzinfo=UTC)
        return v

    @field_validator("due_date")
    @classmethod
    def _due_date_utc(cls, v: datetime | None) -> datetime | None:
        # CRMs that send a time without a zone mean UTC; any zone given is converted to UTC.
        if v is None:
            return None
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @field_validator("case_id", mode="before")
    @classmethod
    def _case_id(cls, v: Any) -> Any:
        # Checked before the model-wide whitespace stripping could rewrite the key.
        if not isinstance(v, str):
            return v
        problem = _key_problem(v, _CASE_ID_CHARS, "a case id")
        if problem is None and v and not v[0].isalnum():
            problem = f"must start with a letter or a digit ({v!r})"
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("oem", mode="before")
    @classmethod
    def _oem(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        # Upper case passes the alphabet check so that its own, clearer message can say so.
        problem = _key_problem(v, _OEM_KEY_CHARS | _UPPER, "an OEM key")
        if problem is None and v != v.lower():
            problem = f"OEM keys are lower case: {v!r} is not the key {v.lower()!r}"
        if problem:
            raise ValueError(problem)
        return v

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

    def changed_fields(self, other: Case) -> list[str]:
        """The fields (payload ones as `payload.<name>`) whose values differ in `other`."""
        mine, theirs = self.model_dump(mode="json"), other.model_dump(mode="json")
        out = [k for k in mine if k != "payload" and mine[k] != theirs[k]]
        out += [
            f"payload.{k}" for k in mine["payload"] if mine["payload"][k] != theirs["payload"][k]
        ]
        return out


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
