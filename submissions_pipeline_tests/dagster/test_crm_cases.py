"""crm_cases: validate, enqueue idempotently, send invalid cases back, re-drive on backfills."""

import pytest
from dagster import AssetCheckSeverity, AssetSelection, DagsterInstance

from submissions_pipeline.assets import crm_cases
from submissions_pipeline.assets.crm_cases import registered_key_for
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
from submissions_pipeline.domain import FailureObject, ReasonCode, SubmissionState
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import (
    OEM,
    check_result,
    metadata_of,
    run_selection,
)
from submissions_pipeline_tests.factories import case_record, make_case

S = SubmissionState
CASES = AssetSelection.assets(crm_cases)


def test_valid_cases_are_enqueued_once_and_invalid_ones_go_back_with_field_messages(
    resources, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm
):
    crm.add_case(case_record(1))
    crm.add_case(case_record(2, vin="1HGCM82633A00435O"))  # an O is never part of a VIN
    crm.add_case(case_record(3, oem="kestrel"))  # another OEM's partition

    first = run_selection(resources, instance, CASES)

    assert first.success
    meta = metadata_of(first, "crm_cases")
    assert (meta["cases_read"], meta["valid"], meta["invalid"], meta["enqueued"]) == (2, 1, 1, 1)
    [job] = store.list_jobs(oem=OEM)
    assert job.case_id == "CASE-00001" and job.state is S.QUEUED
    assert crm.get_case("CASE-00001").status is CrmStatus.IN_PROGRESS
    invalid = crm.get_case("CASE-00002")
    assert invalid.status is CrmStatus.INVALID_DATA
    assert "vin" in invalid.field_errors and "O" in invalid.field_errors["vin"]
    assert invalid.failure.reason_code is ReasonCode.CASE_INVALID
    assert crm.get_case("CASE-00003").status is CrmStatus.NEW

    crm.add_case(case_record(4))
    second = run_selection(resources, instance, CASES)
    meta = metadata_of(second, "crm_cases")
    assert meta["cases_read"] == 1 and meta["crm_cursor"] != ""
    assert len(store.list_jobs(oem=OEM)) == 2


def test_a_case_coming_back_after_its_job_finished_is_never_submitted_again(
    resources, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm
):
    record = case_record(1, test_record=True)
    crm.add_case(record)
    run_selection(resources, instance, CASES)
    [job] = store.list_jobs(oem=OEM)
    store.claim("w", oem=OEM)
    store.transition(job.job_id, S.SUBMITTED, actor="w", lease_owner="w", reference="NW-1")
    store.transition(job.job_id, S.EVIDENCE_STORED, actor="w", lease_owner="w")
    store.transition(job.job_id, S.CRM_UPDATED, actor="dagster")

    crm.reset_test_record("CASE-00001")  # back to "new" at the end of the feed
    run_selection(resources, instance, CASES)

    assert [j.job_id for j in store.list_jobs(oem=OEM)] == [job.job_id]
    case = crm.get_case("CASE-00001")
    assert case.status is CrmStatus.SUBMITTED and case.reference == "NW-1"


def test_a_backfill_re_drives_retryable_dead_letters_but_not_adapter_bugs(
    resources, instance: DagsterInstance, store: JobStore
):
    flaky = store.enqueue(make_case(1)).job_id
    broken = store.enqueue(make_case(2)).job_id
    store.claim("w", oem=OEM, limit=2)
    store.dead_letter(flaky, FailureObject.of(ReasonCode.SITE_HTTP_5XX, "503"), actor="w")
    store.dead_letter(broken, FailureObject.of(ReasonCode.SELECTOR_NOT_FOUND, "x"), actor="w")

    nightly = run_selection(resources, instance, CASES)
    assert metadata_of(nightly, "crm_cases")["redriven"] == 0

    backfill = run_selection(resources, instance, CASES, tags={"dagster/backfill": "bf1"})
    assert metadata_of(backfill, "crm_cases")["redriven"] == 1
    assert store.get(flaky).state is S.QUEUED and store.get(flaky).tries == 0
    assert store.get(broken).state is S.DEAD_LETTERED


def test_cases_under_a_near_miss_of_the_oem_key_go_back_as_invalid_on_oem(
    resources, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm
):
    crm.add_case(case_record(1))
    for n, key in ((2, "Northwind"), (3, " northwind"), (4, "NORTH WIND"), (5, "Aurora")):
        crm.add_case(case_record(n, oem=key))

    result = run_selection(resources, instance, CASES)

    meta = metadata_of(result, "crm_cases")
    assert (meta["cases_read"], meta["valid"], meta["misfiled_oem"]) == (4, 1, 3)
    assert [j.case_id for j in store.list_jobs()] == ["CASE-00001"]
    for case_id in ("CASE-00002", "CASE-00003", "CASE-00004"):
        case = crm.get_case(case_id)
        assert case.status is CrmStatus.INVALID_DATA and set(case.field_errors) == {"oem"}
        assert "did you mean 'northwind'" in case.field_errors["oem"]
    assert crm.get_case("CASE-00005").status is CrmStatus.NEW  # aurora's partition returns it
    assert meta["unknown_oems"] == {} and check_result(result, "unknown_oems").passed
    assert metadata_of(run_selection(resources, instance, CASES), "crm_cases")["cases_read"] == 0


def test_cases_for_an_oem_nobody_registered_are_listed_and_warned_about(
    resources, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm
):
    crm.add_case(case_record(1))
    for n, key in ((2, "zephyr"), (3, "zephyr"), (4, "Zephyr")):
        crm.add_case(case_record(n, oem=key))

    for partition in ("northwind", "aurora"):  # every materialization lists them
        result = run_selection(resources, instance, CASES, oem=partition)
        meta = metadata_of(result, "crm_cases")
        assert meta["unknown_oems"] == {"Zephyr": 1, "zephyr": 2}
        assert meta["unknown_oem_cases"] == 3
        warning = check_result(result, "unknown_oems")
        assert not warning.passed and warning.severity is AssetCheckSeverity.WARN
        assert "'zephyr': 2" in warning.description
    assert result.success  # a warning, not a failure of the OEM's own run
    assert {c.status for c in crm.list_cases() if c.oem != OEM} == {CrmStatus.NEW}


@pytest.mark.parametrize(
    ("key", "registered"),
    [
        ("Northwind", "northwind"),
        ("northwind\t", "northwind"),
        ("North wind", "northwind"),
        ("\uff4e\uff4f\uff52\uff54\uff48\uff57\uff49\uff4e\uff44", "northwind"),
        ("northwind", None),  # the key itself
        ("northwinds", None),
        ("zephyr", None),
    ],
    ids=ascii,
)
def test_a_near_miss_differs_only_by_case_whitespace_or_unicode_form(key, registered):
    assert registered_key_for(key, ["aurora", "kestrel", "northwind"]) == registered
