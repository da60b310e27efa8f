"""Cases entered into the local org the way dealer staff would: as a person, not the integration.

`CaseDesk` is what the demo seeding and the tests hand to `seed_demo_cases` (it has the
`add_case`, `list_cases` and `clock` that seeding uses). Field names come in as plain data from
the caller's mapping, so the sandbox imports nothing of the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.salesforce.org import HUMAN_USER, Org


@dataclass
class DeskCase:
    case_id: str
    oem: str
    record_id: str


class CaseDesk:
    """Enters cases into `obj` with `case_fields` (contract name -> Salesforce field)."""

    def __init__(
        self, org: Org, case_fields: Mapping[str, str], new_status: str, obj: str = "Case"
    ):
        self.org, self.fields, self.new_status, self.obj = org, dict(case_fields), new_status, obj

    def clock(self) -> datetime:
        return datetime.now(UTC)

    def values(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"Status": self.new_status}
        for name, sf_name in self.fields.items():
            value: Any = raw
            for part in name.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if value is not None:
                out[sf_name] = value
        return out

    def add_case(self, raw: Mapping[str, Any]) -> str:
        self.org.insert(self.obj, self.values(raw), user=HUMAN_USER)
        return str(raw.get("case_id"))

    def list_cases(self, *, oem: str | None = None, status: Any = None) -> list[DeskCase]:
        id_field, oem_field = self.fields["case_id"], self.fields["oem"]
        return [
            DeskCase(r.get(id_field), r.get(oem_field), r["Id"])
            for r in self.org.records(self.obj)
            if oem is None or r.get(oem_field) == oem
        ]

    def record(self, case_id: str) -> dict[str, Any]:
        found = self.org.find(self.obj, self.fields["case_id"], case_id)
        if found is None:
            raise KeyError(case_id)
        return dict(found)
