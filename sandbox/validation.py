"""Server-side validation of claim fields: one set of rules for all portals, each in its markup."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

VIN_RE = re.compile(r"^[A-Z0-9]{17}$")
CASE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,63}$")
PART_NUMBER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./-]{2,29}$")

#: The case-payload keys every portal collects, in the order the ledger stores them.
PAYLOAD_KEYS: tuple[str, ...] = (
    "repair_date",
    "mileage",
    "complaint",
    "cause",
    "correction",
    "labor_hours",
    "part_number",
)

MESSAGES: dict[str, str] = {
    "case_id": "Enter your reference (letters, digits, - _ . / : ; at most 64 characters)",
    "repair_date.format": "Enter the repair date as YYYY-MM-DD",
    "repair_date.future": "The repair date cannot be in the future",
    "mileage": "Mileage must be a whole number greater than 0",
    "complaint": "Describe the complaint in at least 10 characters",
    "cause": "Enter the cause of the failure",
    "correction": "Enter the correction performed",
    "labor_hours": "Labor hours must be a number greater than 0 and at most 40",
    "part_number": "Enter a valid part number (3 to 30 letters, digits, dashes)",
    "document": "Attach a supporting document (PDF or text, not empty)",
    "attestation": "You must confirm the attestation before submitting",
    "vin": "Enter a valid 17-character VIN (letters and digits)",
}


def normalize_vin(raw: str) -> str:
    return raw.strip().upper().replace(" ", "")


def vin_error(vin: str) -> str | None:
    return None if VIN_RE.match(vin) else MESSAGES["vin"]


def validate_field(key: str, raw: str, today: date) -> tuple[Any, str | None]:
    """Parse one submitted field: ``(value, None)`` when valid, ``(raw, message)`` otherwise."""
    text = (raw or "").strip()
    if key == "case_id":
        return (text, None) if CASE_ID_RE.match(text) else (text, MESSAGES["case_id"])
    if key == "repair_date":
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                raise ValueError(text)
            parsed = date.fromisoformat(text)
        except ValueError:
            return text, MESSAGES["repair_date.format"]
        if parsed > today:
            return text, MESSAGES["repair_date.future"]
        return parsed.isoformat(), None
    if key == "mileage":
        if re.fullmatch(r"\d{1,7}", text) and int(text) > 0:
            return int(text), None
        return text, MESSAGES["mileage"]
    if key == "labor_hours":
        try:
            hours = float(text)
        except ValueError:
            return text, MESSAGES["labor_hours"]
        if not (0.0 < hours <= 40.0) or hours != hours:
            return text, MESSAGES["labor_hours"]
        return hours, None
    if key == "complaint":
        return (text, None) if len(text) >= 10 else (text, MESSAGES["complaint"])
    if key in ("cause", "correction"):
        return (text, None) if len(text) >= 3 else (text, MESSAGES[key])
    if key == "part_number":
        return (text, None) if PART_NUMBER_RE.match(text) else (text, MESSAGES["part_number"])
    raise KeyError(key)
