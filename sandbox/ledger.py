"""The in-memory record of every submission a sandbox portal received: the tests' ground truth."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime
from typing import Any

from pydantic import BaseModel


class LedgerEntry(BaseModel):
    """One submission as the portal recorded it, whatever the browser was shown afterwards."""

    oem: str
    case_id: str
    vin: str
    dealer_id: str
    reference: str
    received_at: datetime
    #: The claim fields in the common case-payload shape (repair_date, mileage, complaint, cause,
    #: correction, labor_hours, part_number; plus kestrel's document metadata). No secrets.
    payload: dict[str, Any]
    ui_version: str
    #: True when the response was replaced by a 504 page (drop_after_submit_rate).
    response_dropped: bool = False


class DuplicateCase(BaseModel):
    """A case id the portal received more than once (what the pipeline must never cause)."""

    case_id: str
    count: int
    references: list[str]


class Ledger:
    """Thread-safe, append-only list of submissions; cleared only by an admin reset."""

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []
        self._lock = threading.Lock()

    def record(self, entry: LedgerEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LedgerEntry]:
        with self._lock:
            return list(self._entries)

    def find(self, query: str, dealer_id: str | None = None) -> list[LedgerEntry]:
        """Submissions whose case id or VIN equals ``query`` (case-insensitive), newest first."""
        wanted = query.strip().upper()
        return [
            entry
            for entry in reversed(self.entries())
            if wanted
            and (entry.case_id.upper() == wanted or entry.vin.upper() == wanted)
            and (dealer_id is None or entry.dealer_id == dealer_id)
        ]

    def duplicates(self) -> list[DuplicateCase]:
        entries = self.entries()
        counts = Counter(entry.case_id for entry in entries)
        return [
            DuplicateCase(
                case_id=case_id,
                count=count,
                references=[e.reference for e in entries if e.case_id == case_id],
            )
            for case_id, count in counts.items()
            if count > 1
        ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
