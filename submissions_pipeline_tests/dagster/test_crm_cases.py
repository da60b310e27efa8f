"""crm_cases: validate, enqueue idempotently, send invalid cases back, re-drive on backfills."""

from dagster import AssetSelection, DagsterInstance

from submissions_pipeline.assets import crm_cases
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
from submissions_pipeline.domain import FailureObject, ReasonCode, SubmissionState
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import OEM, metadata_of, run_selection
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
    assert store.get(flaky).state is S.QUEUED and store.get(flaky).attempt == 0
    assert store.get(broken).state is S.DEAD_LETTERED
