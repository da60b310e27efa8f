"""The published CRM field contract: field, status and reason-code names generated from the
models, versioned, and the check that a change of names comes with a new version.

A CRM integration (a Salesforce org's fields and picklists, a report, another team's flow)
depends on these names; the pipeline may never rename one under it. `contract()` derives the
contract from the pydantic models and enums, `contracts/crm-v{VERSION}.json` is the published
copy, and `drift()` names every difference between the two, so a test fails when the models
change the contract without a new version (and a new published file).
"""

from __future__ import annotations

import json
import types
import typing
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from submissions_pipeline.crm.base import NOT_WRITABLE_BY_AUTOMATION, CrmStatus, CrmUpdate
from submissions_pipeline.domain import Case, ErrorClass, FailureObject, ReasonCode
from submissions_pipeline.settings import PROJECT_ROOT

#: The contract's version: bump it (and publish contracts/crm-v{N}.json) with any change.
VERSION = 2

#: Where the published contracts and the CRM mappings live.
CONTRACTS_DIR = PROJECT_ROOT / "contracts"

#: Write-back fields only the pipeline's own bookkeeping uses: not part of a CRM's schema.
_INTERNAL_UPDATE_FIELDS = frozenset({"case_id", "revision"})


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        inner = " | ".join(_type_name(a) for a in args)
        return f"{inner} | null" if len(args) < len(typing.get_args(annotation)) else inner
    if origin is dict:
        return f"object<{_type_name(args[0])}, {_type_name(args[1])}>"
    if origin is list:
        return f"array<{_type_name(args[0])}>"
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return f"enum {annotation.__name__}"
        if issubclass(annotation, BaseModel):
            return f"object {annotation.__name__}"
        return {
            str: "string",
            int: "integer",
            float: "number",
            bool: "boolean",
            datetime: "date-time",
            date: "date",
        }.get(annotation, annotation.__name__)
    return str(annotation)


def _fields(model: type[BaseModel], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Every field of a model (nested models flattened as `outer.inner`), in declared order."""
    out: dict[str, dict[str, Any]] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.update(_fields(annotation, f"{prefix}{name}."))
            continue
        out[f"{prefix}{name}"] = {
            "type": _type_name(annotation),
            "required": info.is_required(),
            "description": info.description or "",
        }
    return out


def contract() -> dict[str, Any]:
    """The contract as the models define it now."""
    write_back = {
        name: spec
        for name, spec in _fields(CrmUpdate).items()
        if name not in _INTERNAL_UPDATE_FIELDS
    }
    write_back["submitted_by"] = {
        "type": "string | null",
        "required": False,
        "description": "Who submitted the claim: 'automation', or the person recorded by hand.",
    }
    write_back["changed_after_submission"] = {
        "type": "object ChangedAfterSubmission | null",
        "required": False,
        "description": "Set when the case changed after its claim was (or may have been) "
        "submitted: a person must reconcile the claim on the portal.",
    }
    return {
        "contract": "crm",
        "version": VERSION,
        "case_fields": _fields(Case),
        "write_back_fields": write_back,
        "statuses": {
            s.value: {"written_by_automation": s not in NOT_WRITABLE_BY_AUTOMATION}
            for s in CrmStatus
        },
        "error_classes": [c.value for c in ErrorClass],
        "reason_codes": {r.value: r.error_class.value for r in ReasonCode},
        "failure_object": _fields(FailureObject),
    }


def published_path(version: int = VERSION) -> Path:
    return CONTRACTS_DIR / f"crm-v{version}.json"


def published(version: int = VERSION) -> dict[str, Any]:
    """The published contract of a version."""
    return json.loads(published_path(version).read_text())


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def drift(current: dict[str, Any], published_doc: dict[str, Any]) -> list[str]:
    """Every difference between the models' contract and a published one, as sentences; an
    empty list when they agree."""
    problems: list[str] = []
    for section in sorted(set(current) | set(published_doc)):
        now, then = current.get(section), published_doc.get(section)
        if now == then:
            continue
        if isinstance(now, dict) and isinstance(then, dict):
            for key in sorted(set(now) - set(then)):
                problems.append(f"{section}: {key!r} added")
            for key in sorted(set(then) - set(now)):
                problems.append(f"{section}: {key!r} removed")
            for key in sorted(k for k in set(now) & set(then) if now[k] != then[k]):
                problems.append(f"{section}: {key!r} changed from {then[key]!r} to {now[key]!r}")
        elif isinstance(now, list) and isinstance(then, list):
            problems += [f"{section}: {v!r} added" for v in now if v not in then]
            problems += [f"{section}: {v!r} removed" for v in then if v not in now]
        else:
            problems.append(f"{section}: {then!r} became {now!r}")
    return problems


def render_markdown(doc: dict[str, Any]) -> str:
    """The contract as the human-readable tables published beside the JSON."""
    lines = [
        f"# CRM field contract, version {doc['version']}",
        "",
        "Generated from the pipeline's models (`submissions contract --markdown`); the JSON "
        f"beside it (`crm-v{doc['version']}.json`) is the machine-readable copy. Any change of "
        "a name or a value below comes with a new version.",
        "",
    ]

    def table(title: str, fields: dict[str, dict[str, Any]]) -> None:
        lines.extend([f"## {title}", "", "| field | type | required | meaning |"])
        lines.append("| --- | --- | --- | --- |")
        for name, spec in fields.items():
            meaning = spec["description"].replace("|", "\\|")
            required = "yes" if spec["required"] else "no"
            kind = spec["type"].replace("|", "\\|")
            lines.append(f"| `{name}` | {kind} | {required} | {meaning} |")
        lines.append("")

    table("Case fields (read from the CRM)", doc["case_fields"])
    table("Write-back fields (written to the CRM)", doc["write_back_fields"])
    lines.extend(["## Statuses", "", "| status | written by automation |", "| --- | --- |"])
    for status, spec in doc["statuses"].items():
        lines.append(f"| `{status}` | {'yes' if spec['written_by_automation'] else 'no'} |")
    lines.extend(["", "## Reason codes", "", "| reason code | error class |", "| --- | --- |"])
    lines += [f"| `{code}` | `{cls}` |" for code, cls in doc["reason_codes"].items()]
    lines.append("")
    table("Failure object (JSON in the failure field)", doc["failure_object"])
    return "\n".join(lines)
