"""Demo seeding: the promised mix for every sandbox OEM, deterministic, idempotent, and honest
about which cases are invalid and why."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from typer.testing import CliRunner

from submissions_pipeline.cli import app
from submissions_pipeline.crm import SANDBOX_OEMS, CrmStatus, EmbeddedCrm, seed_demo_cases
from submissions_pipeline.crm.seed import DEALER_IDS, build_demo_cases, vin_check_digit
from submissions_pipeline.domain import CaseValidationError, validate_case

TODAY = date(2026, 11, 26)  # the conftest clock's date
PAYLOAD_KEYS = {
    "repair_date",
    "mileage",
    "complaint",
    "cause",
    "correction",
    "labor_hours",
    "part_number",
}


def test_seeding_gives_every_sandbox_oem_the_promised_mix(crm: EmbeddedCrm):
    summary = seed_demo_cases(crm)
    assert set(summary.per_oem) == set(SANDBOX_OEMS) == {"northwind", "aurora", "kestrel"}
    for oem in SANDBOX_OEMS:
        counts = summary.per_oem[oem]
        cases = crm.list_cases(oem=oem)
        raws = [c.raw for c in cases]
        assert counts.cases == counts.added == len(cases) == 20
        assert counts.valid > counts.invalid >= 3
        assert 2 <= counts.test_records == sum(c.test_record for c in cases) <= 3
        assert counts.redaction_sensitive == sum(r["redaction_sensitive"] for r in raws) >= 1
        assert counts.prioritised == sum(r["priority"] > 0 for r in raws) >= 1
        assert {c.status for c in cases} == {CrmStatus.NEW}
    ids = [c.case_id for c in crm.list_cases()]
    assert len(ids) == len(set(ids)) == 60
    assert all(re.fullmatch(r"(NW|AU|KS)-(\d{6}|TEST-\d{2})", i) for i in ids)


def test_every_invalid_seeded_case_fails_on_the_field_it_gets_wrong(crm: EmbeddedCrm):
    summary = seed_demo_cases(crm)
    invalid = summary.invalid_fields
    assert {"vin", "dealer_id", "payload.mileage"} <= set(invalid.values())
    for case in crm.list_cases():
        if case.case_id not in invalid:
            continue
        with pytest.raises(CaseValidationError) as err:
            validate_case(case.raw)
        errors = err.value.as_dict()
        assert set(errors) == {invalid[case.case_id]}
        assert all(msg for msg in errors.values())


def test_every_valid_seeded_case_is_a_realistic_warranty_claim(crm: EmbeddedCrm):
    summary = seed_demo_cases(crm)
    valid = [c for c in crm.list_cases() if c.case_id not in summary.invalid_fields]
    assert len(valid) == sum(c.valid for c in summary.per_oem.values())
    for record in valid:
        case = validate_case(record.raw)
        assert set(record.raw["payload"]) == PAYLOAD_KEYS
        assert case.dealer_id in DEALER_IDS
        assert TODAY - timedelta(days=60) <= case.payload.repair_date < TODAY
        assert isinstance(record.raw["payload"]["mileage"], int)
        assert case.vin[8] == vin_check_digit(case.vin)
        assert not set(case.vin) & set("IOQ")


def test_the_vin_check_digit_is_the_north_american_one():
    assert vin_check_digit("1HGCM82633A004352") == "3"
    assert vin_check_digit("JH4KA7561PC008269") == "1"


def test_seeding_again_adds_nothing(crm: EmbeddedCrm, clock):
    first = seed_demo_cases(crm)
    before = [(c.case_id, c.raw, c.sequence) for c in crm.list_cases()]
    clock.advance(3 * 86_400)  # another day, other repair dates: still nothing new
    again = seed_demo_cases(crm)
    assert first.added == 60 and again.added == 0
    assert [(c.case_id, c.raw, c.sequence) for c in crm.list_cases()] == before
    assert all(crm.history(c.case_id) == [] for c in crm.list_cases())


def test_seeding_is_deterministic_for_a_seed(tmp_path, clock):
    a = EmbeddedCrm.from_url(f"sqlite:///{tmp_path / 'a.db'}", clock=clock)
    b = EmbeddedCrm.from_url(f"sqlite:///{tmp_path / 'b.db'}", clock=clock)
    assert seed_demo_cases(a, seed=11) == seed_demo_cases(b, seed=11)
    assert [c.raw for c in a.list_cases()] == [c.raw for c in b.list_cases()]
    other = build_demo_cases("northwind", 20, seed=12, today=TODAY)
    assert [c.raw for c in other] != [c.raw for c in a.list_cases(oem="northwind")]
    a.dispose()
    b.dispose()


def test_a_too_small_seed_is_refused_rather_than_missing_part_of_the_mix():
    with pytest.raises(ValueError):
        build_demo_cases("northwind", 5, seed=7, today=TODAY)
    smallest = build_demo_cases("northwind", 6, seed=7, today=TODAY)
    assert sum(c.raw["test_record"] for c in smallest) == 2
    assert sum(c.invalid_field is not None for c in smallest) == 3


def _rows(output: str) -> dict[str, list[str]]:
    """The per-OEM count rows the command prints, by OEM."""
    lines = [line.split() for line in output.splitlines()]
    return {cells[0]: cells[1:] for cells in lines if cells and cells[0] in SANDBOX_OEMS}


def test_the_seed_command_fills_the_database_and_prints_counts_per_oem(db_url, tmp_path):
    runner = CliRunner()
    env = {"SUBMISSIONS_DB_URL": db_url, "SUBMISSIONS_HOME": str(tmp_path)}
    result = runner.invoke(app, ["seed", "--per-oem", "10", "--seed", "3"], env=env)
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert set(rows) == set(SANDBOX_OEMS)
    for oem, (cases, valid, invalid, sensitive, tests, added) in rows.items():
        assert int(cases) == int(added) == 10 == int(valid) + int(invalid), oem
        assert int(invalid) >= 3 and int(sensitive) >= 1 and int(tests) == 2

    again = runner.invoke(app, ["seed", "--per-oem", "10", "--seed", "3"], env=env)
    assert again.exit_code == 0, again.output
    assert [added for *_, added in _rows(again.output).values()] == ["0"] * 3

    crm = EmbeddedCrm.from_url(db_url)
    assert len(crm.list_cases()) == 30
    crm.dispose()
