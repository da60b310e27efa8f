"""The portals validate claims server-side and show each message next to its field."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_northwind_rejects_bad_vin_unknown_vehicle_bad_fields_and_missing_attestation(
    sandbox, portal_flow, make_payload
):
    flow = portal_flow("northwind")
    page = flow.page
    flow.login()

    flow.search("ABC123", "ignored")
    expect(page.get_by_test_id("vin-error")).to_have_text(
        "Enter a valid 17-character VIN (letters and digits)"
    )
    flow.search("1NWAB23C45D000000", "ignored")
    expect(page.get_by_test_id("vehicle-not-found")).to_contain_text("No vehicle found")

    flow.search("1NWAB23C45D678901", "ignored")
    flow.button(flow.spec.start_button).click()
    bad = make_payload(repair_date="2999-01-01", mileage="-5", part_number="x")
    flow.fill_step(0, "", bad)

    expect(page.get_by_role("alert")).to_have_text("Please correct the 4 highlighted field(s).")
    expect(page.get_by_test_id("case-id-error")).to_contain_text("Enter your reference")
    expect(page.get_by_test_id("repair-date-error")).to_have_text(
        "The repair date cannot be in the future"
    )
    expect(page.get_by_test_id("mileage-error")).to_have_text(
        "Mileage must be a whole number greater than 0"
    )
    expect(page.get_by_test_id("part-number-error")).to_contain_text("valid part number")
    mileage = flow.field("Mileage")
    expect(mileage).to_have_attribute("aria-invalid", "true")
    expect(mileage).to_have_attribute("aria-describedby", "nw-mileage-error")

    flow.fill_step(0, "CASE-VALID", make_payload(repair_date="15/01/2025"))
    expect(page.get_by_test_id("repair-date-error")).to_have_text(
        "Enter the repair date as YYYY-MM-DD"
    )
    flow.fill_step(0, "CASE-VALID", make_payload())
    flow.fill_step(1, "CASE-VALID", make_payload(complaint="noise", cause="", labor_hours=41))
    expect(page.get_by_test_id("complaint-error")).to_have_text(
        "Describe the complaint in at least 10 characters"
    )
    expect(page.get_by_test_id("cause-error")).to_have_text("Enter the cause of the failure")
    expect(page.get_by_test_id("labor-hours-error")).to_have_text(
        "Labor hours must be a number greater than 0 and at most 40"
    )
    expect(page.get_by_test_id("correction-error")).to_have_count(0)

    flow.fill_step(1, "CASE-VALID", make_payload())
    flow.button(flow.spec.submit_button).click()  # attestation not ticked
    expect(page.get_by_test_id("attestation-error")).to_have_text(
        "You must confirm the attestation before submitting"
    )
    assert sandbox.ledger("northwind") == []


def test_aurora_rejects_fractional_mileage_and_zero_labor_hours(sandbox, portal_flow, make_payload):
    flow = portal_flow("aurora")
    flow.login()
    flow.search("WAUZZZ8V5KA123456", "CASE-AU-BAD")
    flow.button(flow.spec.start_button).click()

    flow.fill_step(0, "CASE-AU-BAD", make_payload(mileage="12.5", labor_hours=0))

    expect(flow.page.get_by_test_id("mileage-error")).to_be_visible()
    expect(flow.page.get_by_test_id("labor-hours-error")).to_be_visible()
    expect(flow.page.get_by_role("alert")).to_have_text("Some answers need fixing (2).")


def test_kestrel_requires_a_supporting_document(sandbox, portal_flow, make_payload):
    flow = portal_flow("kestrel")
    flow.login()
    flow.search("3KTHX45J28M765432", "ignored")
    flow.button(flow.spec.start_button).click()
    flow.fill_step(0, "CASE-KT-NODOC", make_payload())
    for key in ("complaint", "cause", "correction"):
        flow.field(flow.spec.steps[1][key]).fill(make_payload()[key])

    flow.button(flow.spec.next_button).click()

    expect(flow.page.get_by_test_id("document-error")).to_have_text(
        "Attach a supporting document (PDF or text, not empty)"
    )
    assert sandbox.ledger("kestrel") == []
