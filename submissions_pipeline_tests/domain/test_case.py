"""A CRM record becomes a Case, or every problem comes back field by field for a human."""

from datetime import UTC, date, datetime, timedelta

import pytest

from submissions_pipeline.domain import CaseValidationError, validate_case
from submissions_pipeline_tests.factories import case_record


def test_valid_record_becomes_case_with_normalised_vin():
    case = validate_case(case_record(vin=" 1hgcm82633a004352 "))
    assert case.vin == "1HGCM82633A004352"


def test_missing_vin_and_bad_dealer_are_reported_per_field():
    record = case_record(dealer_id="bad dealer")
    del record["vin"]
    with pytest.raises(CaseValidationError) as exc:
        validate_case(record)
    errors = exc.value.as_dict()
    assert errors["vin"] == "is required"
    assert "dealer_id" in errors
    assert exc.value.case_id == record["case_id"]


@pytest.mark.parametrize(
    ("vin", "fragment"),
    [("1HGCM82633A00435", "17 characters"), ("1HGCM82633A00435O", "not allowed")],
)
def test_vin_messages_say_what_is_wrong(vin, fragment):
    with pytest.raises(CaseValidationError) as exc:
        validate_case(case_record(vin=vin))
    assert fragment in exc.value.as_dict()["vin"]


def test_payload_errors_name_the_nested_field():
    record = case_record()
    record["payload"]["mileage"] = -5
    record["payload"]["labor_hours"] = 80
    with pytest.raises(CaseValidationError) as exc:
        validate_case(record)
    assert set(exc.value.as_dict()) == {"payload.mileage", "payload.labor_hours"}


def test_idempotency_key_changes_with_payload_not_with_priority():
    a = validate_case(case_record())
    b = validate_case(case_record(priority=5))
    changed = case_record()
    changed["payload"]["mileage"] += 1
    assert a.idempotency_key() == b.idempotency_key()
    assert a.idempotency_key() != validate_case(changed).idempotency_key()


@pytest.mark.parametrize(
    ("case_id", "fragment"),
    [
        (" CASE-1", "leading or trailing whitespace"),
        ("CASE-1 ", "leading or trailing whitespace"),
        ("CASE 1", "whitespace or control"),
        ("CASE-1\x00", "whitespace or control"),
        ("CASE-1\u200b", "whitespace or control"),
        ("\uff23ASE-1", "reads like 'CASE-1'"),
        ("CAFE\u0301-1", "alphabet"),
        ("CASE/1", "not allowed"),
        ("-CASE-1", "start with a letter or a digit"),
    ],
    ids=ascii,
)
def test_a_case_id_is_used_exactly_as_entered_or_refused_with_the_reason(case_id, fragment):
    with pytest.raises(CaseValidationError) as exc:
        validate_case(case_record(case_id=case_id))
    errors = exc.value.as_dict()
    assert set(errors) == {"case_id"} and fragment in errors["case_id"]


@pytest.mark.parametrize("oem", ["Northwind", " northwind", "northwind\n", "north wind"], ids=ascii)
def test_an_oem_key_is_exact_never_folded_or_trimmed(oem):
    with pytest.raises(CaseValidationError) as exc:
        validate_case(case_record(oem=oem))
    assert set(exc.value.as_dict()) == {"oem"}


@pytest.mark.parametrize(
    ("given", "due_at"),
    [
        (None, None),
        ("", None),
        ("2026-12-01", datetime(2026, 12, 2, tzinfo=UTC)),
        (date(2026, 12, 1), datetime(2026, 12, 2, tzinfo=UTC)),
        ("2026-12-01T09:30:00Z", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("2026-12-01T09:30:00", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("2026-12-01T10:30:00+01:00", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("2026-12-01T00:00:00.000+0000", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_a_due_date_is_optional_and_becomes_a_utc_deadline(given, due_at):
    """A date alone is due by the end of that UTC day; a time without a zone is UTC."""
    case = validate_case(case_record(1, due_date=given))
    assert case.due_date == due_at
    assert case.due_date is None or case.due_date.utcoffset() == timedelta(0)


def test_a_case_without_a_due_date_field_still_validates():
    record = case_record(1)
    assert "due_date" not in record
    assert validate_case(record).due_date is None


@pytest.mark.parametrize("bad", ["2026-02-30", "next week", "2026-13-01T00:00:00Z", 17.5, 20261201])
def test_a_bad_due_date_is_a_field_level_error_and_nothing_else_is_reported(bad):
    with pytest.raises(CaseValidationError) as exc:
        validate_case(case_record(1, due_date=bad))
    assert list(exc.value.as_dict()) == ["due_date"]


def test_the_due_date_is_not_submitted_content():
    """Moving a deadline does not make the case new work (its idempotency key stays)."""
    plain = validate_case(case_record(1))
    dated = validate_case(case_record(1, due_date="2026-12-01"))
    assert plain.idempotency_key() == dated.idempotency_key()
    assert plain.changed_fields(dated) == ["due_date"]
