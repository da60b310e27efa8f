"""Which Salesforce field and picklist value stands for each name of the CRM contract.

The names come from a mapping file (`contracts/salesforce-v2.json` by default), checked against
the contract: every case field, write-back field and status must have a Salesforce name, and
the file must name the contract version it maps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from submissions_pipeline.crm.base import CrmStatus
from submissions_pipeline.crm.contract import CONTRACTS_DIR, contract

DEFAULT_MAPPING_FILE = CONTRACTS_DIR / "salesforce-v2.json"


class ActivityMapping(BaseModel):
    """The custom object holding one record per outcome (the case's activity log)."""

    object: str
    external_id: str = Field(description="External ID field: `{job}:{attempt}:{status}`.")
    case: str = Field(description="Lookup to the case record.")
    case_id: str
    kind: str
    actor: str
    job_id: str
    status: str
    changes: str
    at: str


class SalesforceMapping(BaseModel):
    """Contract names -> Salesforce API names and picklist values."""

    contract_version: int
    case_object: str = "Case"
    sequence_field: str = Field(
        "CaseNumber", description="An auto-number field: the case's position for people."
    )
    case_fields: dict[str, str]
    write_back_fields: dict[str, str]
    statuses: dict[str, str]
    activity: ActivityMapping

    @classmethod
    def load(cls, path: Path | None = None) -> SalesforceMapping:
        return cls.model_validate(json.loads((path or DEFAULT_MAPPING_FILE).read_text()))

    def problems(self, doc: dict[str, Any] | None = None) -> list[str]:
        """Where the mapping and the contract disagree (empty when it covers the contract)."""
        doc = doc or contract()
        out = []
        if self.contract_version != doc["version"]:
            out.append(f"maps contract v{self.contract_version}, the contract is v{doc['version']}")
        for section in ("case_fields", "write_back_fields", "statuses"):
            mine, theirs = set(getattr(self, section)), set(doc[section])
            out += [f"{section}: no Salesforce name for {n!r}" for n in sorted(theirs - mine)]
            out += [f"{section}: {n!r} is not in the contract" for n in sorted(mine - theirs)]
        values = list(self.statuses.values())
        if len(set(values)) != len(values):
            out.append("statuses: two statuses share a picklist value")
        return out

    def require_valid(self) -> SalesforceMapping:
        problems = self.problems()
        if problems:
            raise ValueError(
                "the Salesforce mapping does not match the contract: " + "; ".join(problems)
            )
        return self

    # ------------------------------------------------------------------ names
    def wb(self, name: str) -> str:
        return self.write_back_fields[name]

    def picklist(self, status: CrmStatus) -> str:
        return self.statuses[status.value]

    def status_of(self, value: str | None) -> CrmStatus | None:
        for name, picklist in self.statuses.items():
            if picklist == value:
                return CrmStatus(name)
        return None

    def case_select(self) -> list[str]:
        """Every field a case read needs, system fields first."""
        fields = ["Id", "SystemModstamp", "LastModifiedById", "CreatedDate", "LastModifiedDate"]
        fields.append(self.sequence_field)
        fields += list(self.case_fields.values()) + list(self.write_back_fields.values())
        return list(dict.fromkeys(fields))

    def raw_case(self, record: dict[str, Any], types: dict[str, str]) -> dict[str, Any]:
        """The case as entered (nested `payload`), from a Salesforce record; empty fields are
        left out so the model's defaults and its 'required' messages apply."""
        raw: dict[str, Any] = {}
        for name, sf_name in self.case_fields.items():
            value = record.get(sf_name)
            if value is None:
                continue
            if types.get(name) == "integer" and isinstance(value, float) and value.is_integer():
                value = int(value)
            if types.get(name, "").startswith("object") and isinstance(value, str):
                value = json.loads(value)  # a long text field holding the object as JSON
            target = raw
            *outer, leaf = name.split(".")
            for part in outer:
                target = target.setdefault(part, {})
            target[leaf] = value
        return raw

    def case_values(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Salesforce field values of a case as entered (seeding and tests)."""
        out = {}
        for name, sf_name in self.case_fields.items():
            value: Any = raw
            for part in name.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, dict):
                value = json.dumps(value, sort_keys=True)
            if value is not None:
                out[sf_name] = value
        return out
