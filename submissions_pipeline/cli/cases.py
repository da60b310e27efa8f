"""`submissions cases add|import`: put cases into the embedded CRM for any OEM, one from flags
or JSON, or a CSV/JSON file; a bad row is reported field by field and costs no other row."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import typer

from submissions_pipeline.cli.app import app
from submissions_pipeline.settings import load_settings

cases = typer.Typer(help="Add cases to the embedded CRM (any OEM, sandbox or not).")
app.add_typer(cases, name="cases")

_TOP = ("case_id", "oem", "dealer_id", "vin", "priority")


def record_from_row(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as a CRM record: top-level columns, `extra.<name>` columns into
    payload.extra, every other non-empty column into the payload."""
    record: dict[str, Any] = {"payload": {}}
    for column, value in row.items():
        if column is None or value is None or value.strip() == "":
            continue
        column, value = column.strip(), value.strip()
        if column in _TOP:
            record[column] = value
        elif column.startswith("extra."):
            record["payload"].setdefault("extra", {})[column.removeprefix("extra.")] = value
        else:
            record["payload"][column] = value
    return record


def _records(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            return [record_from_row(row) for row in csv.DictReader(f)]
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else [data]


def _add(records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Add every valid record; (added case ids, one line per problem of the others)."""
    from submissions_pipeline.domain import CaseValidationError, validate_case
    from submissions_pipeline.resource_sets import job_store_and_crm

    added, problems = [], []
    with job_store_and_crm(load_settings()) as (_, crm):
        if not hasattr(crm, "add_case"):
            raise typer.BadParameter("only the embedded CRM takes cases from this command")
        for n, record in enumerate(records, start=1):
            try:
                case = validate_case(record)
            except CaseValidationError as exc:
                for field, message in exc.as_dict().items():
                    problems.append(f"row {n} ({record.get('case_id', '?')}): {field}: {message}")
                continue
            added.append(crm.add_case(case.model_dump(mode="json")))
    return added, problems


def _report(added: list[str], problems: list[str]) -> None:
    for case_id in added:
        typer.echo(f"added {case_id}")
    for line in problems:
        typer.echo(f"invalid {line}", err=True)
    typer.echo(f"{len(added)} added, {len(problems)} field error(s)")
    raise typer.Exit(1 if problems else 0)


@cases.command("add")
def add(
    oem: str = typer.Option(..., help="The OEM key."),
    case_id: str | None = typer.Option(None, help="The CRM's case id."),
    dealer: str | None = typer.Option(None, help="The dealer id whose credentials submit it."),
    vin: str | None = typer.Option(None, help="The vehicle's VIN."),
    payload: str | None = typer.Option(None, help="The payload as JSON (extra fields in 'extra')."),
    json_record: str | None = typer.Option(
        None, "--json", help="The whole record as JSON; flags given override its keys."
    ),
) -> None:
    """Add one case; invalid fields are reported and nothing is added."""
    record: dict[str, Any] = json.loads(json_record) if json_record else {}
    flags = {"oem": oem, "case_id": case_id, "dealer_id": dealer, "vin": vin}
    record.update({k: v for k, v in flags.items() if v is not None})
    if payload:
        record["payload"] = json.loads(payload)
    _report(*_add([record]))


@cases.command("import")
def import_cases(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="A .csv or .json file."),
    oem: str | None = typer.Option(None, help="The OEM of rows that name none."),
) -> None:
    """Add every valid case of a CSV (one column per field, `extra.<name>` for the OEM's extra
    fields) or JSON file (a record or a list); bad rows are reported, the others added."""
    records = _records(path)
    if oem:
        for record in records:
            record.setdefault("oem", oem)
    _report(*_add(records))
