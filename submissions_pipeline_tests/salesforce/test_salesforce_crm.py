"""SalesforceCrm with the real simple-salesforce client against the local org: intake across
pages, idempotent batch write-backs, expired sessions, the API limit, validation rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox.salesforce import INTEGRATION_USER, SalesforceServer
from sandbox.salesforce.desk import CaseDesk
from submissions_pipeline.crm import (
    CrmConflict,
    CrmRecordRejected,
    CrmStatus,
    CrmUnavailable,
    CrmUpdate,
)
from submissions_pipeline.crm.salesforce import SalesforceCrm
from submissions_pipeline.crm.salesforce_mapping import SalesforceMapping
from submissions_pipeline.domain import FailureObject, ReasonCode, validate_case
from submissions_pipeline_tests.factories import case_record
from submissions_pipeline_tests.salesforce.conftest import Sleeper, make_crm

OEM = "northwind"
ACTIVITY = "Submission_Activity__c"


def enter(
    desk: CaseDesk, n: int, oem: str = OEM, start: int = 0, *, settle: bool = True
) -> list[str]:
    """Cases entered by a person; with `settle`, the org's clock then moves past their second
    (intake reads only seconds the org has finished)."""
    ids = []
    for i in range(start, start + n):
        ids.append(desk.add_case(case_record(i, oem=oem)))
    if settle:
        desk.org.advance(2)
    return ids


def submitted(case_id: str, n: int) -> CrmUpdate:
    return CrmUpdate(
        case_id=case_id,
        job_id=f"job-{n:05d}",
        attempt=1,
        status=CrmStatus.SUBMITTED,
        reference=f"NW-{n:06d}",
        evidence_url=f"file:///evidence/job-{n:05d}/post_confirm.png",
        submitted_by_automation=True,
    )


def test_intake_reads_5000_cases_across_three_pages_and_a_reread_repeats_nothing(
    salesforce: SalesforceServer, desk: CaseDesk, sf_crm: SalesforceCrm
):
    ids = enter(desk, 5000)
    enter(desk, 3, oem="aurora", start=9000)
    calls = salesforce.org.api_calls

    page = sf_crm.list_new_cases(OEM, None, limit=10_000)

    assert [r.case_id for r in page.records] == ids  # every page, in feed order
    assert salesforce.org.api_calls - calls == 3  # a query and two nextRecordsUrl reads
    assert validate_case(page.records[0].raw).case_id == ids[0]
    assert sf_crm.list_new_cases(OEM, page.next_cursor, limit=10_000).records == []

    # Small pages over records sharing one SystemModstamp: the Id breaks ties, nothing repeats.
    seen, cursor = [], None
    while batch := sf_crm.list_new_cases(OEM, cursor, limit=700).records:
        seen += [r.case_id for r in batch]
        cursor = batch[-1].cursor
    assert seen == ids


def test_our_own_write_backs_never_bring_a_case_back(
    salesforce: SalesforceServer, desk: CaseDesk, sf_crm: SalesforceCrm, mapping: SalesforceMapping
):
    ids = enter(desk, 4)
    page = sf_crm.list_new_cases(OEM, None)
    sf_crm.write_back(CrmUpdate(case_id=ids[0], job_id="job-1", status=CrmStatus.IN_PROGRESS))
    # The integration user touching a case that still reads new (a flow gone wrong) is skipped.
    record = desk.record(ids[1])
    salesforce.org.edit("Case", record["Id"], {"Priority__c": 1}, user=INTEGRATION_USER)

    assert sf_crm.list_new_cases(OEM, page.next_cursor).records == []
    assert [r.case_id for r in sf_crm.list_new_cases(OEM, None).records] == ids[2:]
    # A person putting a case back in the queue brings it back after the cursor.
    salesforce.org.edit(
        "Case", desk.record(ids[0])["Id"], {"Status": mapping.picklist(CrmStatus.NEW)}
    )
    salesforce.org.advance(2)
    assert [r.case_id for r in sf_crm.list_new_cases(OEM, page.next_cursor).records] == [ids[0]]
    assert sf_crm.count_unrouted_cases([OEM]) == {}
    enter(desk, 2, oem="zephyr", start=50)
    assert sf_crm.count_unrouted_cases([OEM, "aurora"]) == {"zephyr": 2}


def test_intake_waits_for_the_second_the_org_is_in_so_a_later_edit_in_it_is_never_skipped(
    salesforce: SalesforceServer, desk: CaseDesk, sf_crm: SalesforceCrm, mapping: SalesforceMapping
):
    salesforce.org.freeze()  # every write below lands in the same SystemModstamp second
    ids = enter(desk, 3, settle=False)
    # Read now, the cursor would pass (second, last Id); a person's edit of the first case in
    # this same second would then sort behind it and never be read. So nothing is read yet.
    assert sf_crm.list_new_cases(OEM, None).records == []
    salesforce.org.edit("Case", desk.record(ids[0])["Id"], {"Submission_Priority__c": 3})
    salesforce.org.advance(1)  # the org is in the next second; the query may have run before
    assert sf_crm.list_new_cases(OEM, None).records == []

    salesforce.org.advance(1)
    page = sf_crm.list_new_cases(OEM, None)
    assert [r.case_id for r in page.records] == ids
    assert page.records[0].raw["priority"] == 3
    assert sf_crm.list_new_cases(OEM, page.next_cursor).records == []


def test_500_outcomes_go_in_collections_and_the_same_outcomes_again_write_nothing(
    salesforce: SalesforceServer, desk: CaseDesk, sf_crm: SalesforceCrm
):
    ids = enter(desk, 500)
    updates = [submitted(c, n) for n, c in enumerate(ids)]

    results = sf_crm.write_back_many(updates)

    assert [r.case_id for r in results] == ids and all(r.ok and r.changed for r in results)
    ledger = salesforce.ledger()
    assert len([e for e in ledger if e.object == "Case"]) == 500
    activities = [e for e in ledger if e.object == ACTIVITY]
    assert len(activities) == 500 and all(e.created for e in activities)
    case = sf_crm.get_case(ids[7])
    assert case.status is CrmStatus.SUBMITTED and case.reference == "NW-000007"
    assert case.submitted_by_automation and case.submitted_by == "automation"
    assert [a.job_id for a in sf_crm.history(ids[7])] == ["job-00007"]

    again = sf_crm.write_back_many(updates)

    assert all(r.ok and not r.changed for r in again)
    assert len(salesforce.ledger()) == len(ledger)  # the ledger proves: nothing written
    assert len(salesforce.records(ACTIVITY)) == 500


def test_a_retried_write_upserts_its_activity_record_instead_of_adding_one(
    salesforce: SalesforceServer, desk: CaseDesk, sf_crm: SalesforceCrm
):
    (case_id,) = enter(desk, 1)
    # The activity went in, the case update did not (a run killed between the two calls).
    salesforce.configure(
        validation_rules=[
            {
                "object": "Case",
                "record_field": "Submission_Case_Id__c",
                "equals": case_id,
                "field": "OEM_Reference__c",
            }
        ]
    )
    assert not sf_crm.write_back_many([submitted(case_id, 1)])[0].ok
    salesforce.configure(validation_rules=[])

    assert sf_crm.write_back(submitted(case_id, 1)) is True

    assert len(salesforce.records(ACTIVITY)) == 1
    assert sf_crm.get_case(case_id).status is CrmStatus.SUBMITTED


def test_a_validation_rule_rejects_one_record_and_its_batch_mates_are_written(
    salesforce: SalesforceServer, desk: CaseDesk, sf_crm: SalesforceCrm
):
    ids = enter(desk, 5)
    salesforce.configure(
        validation_rules=[
            {
                "object": "Case",
                "record_field": "Submission_Case_Id__c",
                "equals": ids[2],
                "field": "OEM_Reference__c",
                "message": "Reference must match the OEM format.",
            }
        ]
    )

    results = sf_crm.write_back_many([submitted(c, n) for n, c in enumerate(ids)])

    rejected = results[2]
    assert rejected.error == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert rejected.fields == ["OEM_Reference__c"] and "OEM format" in (rejected.message or "")
    assert [r.changed for r in results] == [True, True, False, True, True]
    assert sf_crm.get_case(ids[2]).status is CrmStatus.NEW
    with pytest.raises(CrmRecordRejected) as err:
        sf_crm.write_back(submitted(ids[2], 2))
    assert isinstance(err.value, CrmConflict) and err.value.fields == ["OEM_Reference__c"]


def test_an_expired_session_mid_run_logs_in_again_and_loses_nothing(
    salesforce: SalesforceServer, desk: CaseDesk, sf_crm: SalesforceCrm
):
    ids = enter(desk, 450)
    salesforce.org.batch_size = 200
    page = sf_crm.list_new_cases(OEM, None, limit=1000)
    salesforce.configure(expire_sessions_after=2)  # dies in the middle of the next paging

    again = sf_crm.list_new_cases(OEM, None, limit=1000)
    salesforce.configure(expire_sessions=True)
    results = sf_crm.write_back_many([submitted(c, n) for n, c in enumerate(ids)])

    assert [r.case_id for r in again.records] == [r.case_id for r in page.records] == ids
    assert all(r.changed for r in results)
    assert sf_crm.api.logins == 3


def test_the_api_limit_exceeded_for_a_minute_backs_off_and_then_writes(
    salesforce: SalesforceServer, desk: CaseDesk, sf_crm: SalesforceCrm, sleeper: Sleeper
):
    # The org's clock moves only by the backoff's sleeps: wall time passing during the calls
    # would otherwise end the minute early (the clock counts whole seconds).
    salesforce.org.freeze()
    ids = enter(desk, 3)
    sf_crm.list_new_cases(OEM, None)
    salesforce.configure(limit_exceeded_s=60)

    results = sf_crm.write_back_many([submitted(c, n) for n, c in enumerate(ids)])

    assert all(r.changed for r in results)
    assert sleeper.waited >= 60


def test_an_api_limit_longer_than_the_budget_gives_the_work_back_unwritten(
    salesforce: SalesforceServer, desk: CaseDesk
):
    ids = enter(desk, 3)
    crm = make_crm(salesforce, budget_s=30, base_s=2)
    crm.list_new_cases(OEM, None)
    salesforce.configure(limit_exceeded_s=3600)

    with pytest.raises(CrmUnavailable):
        crm.write_back_many([submitted(c, n) for n, c in enumerate(ids)])

    assert salesforce.ledger() == []
    salesforce.configure(advance_s=3600)
    assert all(r.changed for r in crm.write_back_many([submitted(c, n) for n, c in enumerate(ids)]))


def test_503s_are_retried(salesforce: SalesforceServer, desk: CaseDesk, sf_crm: SalesforceCrm):
    ids = enter(desk, 2)
    salesforce.configure(unavailable_next=3)
    assert [r.case_id for r in sf_crm.list_new_cases(OEM, None).records] == ids


def test_failures_human_submissions_and_conflicts_read_like_the_embedded_crm(
    salesforce: SalesforceServer, desk: CaseDesk, sf_crm: SalesforceCrm
):
    a, b, c = enter(desk, 3)
    failure = FailureObject.of(
        ReasonCode.PORTAL_VALIDATION, "mileage rejected", field_errors={"mileage": "too high"}
    )
    sf_crm.write_back(
        CrmUpdate(
            case_id=a,
            job_id="job-a",
            attempt=2,
            status=CrmStatus.INVALID_DATA,
            failure=failure,
            field_errors=failure.field_errors,
        )
    )
    assert sf_crm.record_human_submission(b, "NW-HAND-1", by="alice") is True
    assert sf_crm.record_human_submission(b, "NW-HAND-1", by="alice") is False
    sf_crm.write_back(submitted(c, 3))

    case_a = sf_crm.get_case(a)
    assert case_a.status is CrmStatus.INVALID_DATA and case_a.failure == failure
    assert case_a.field_errors == {"mileage": "too high"}
    case_b = sf_crm.get_case(b)
    assert case_b.status is CrmStatus.HUMAN_SUBMITTED and case_b.submitted_by == "alice"
    with pytest.raises(CrmConflict):
        sf_crm.write_back(submitted(b, 2))
    with pytest.raises(CrmConflict):
        sf_crm.record_human_submission(c, "NW-HAND-2", by="bob")
    statuses = {r.case_id: r.status for r in sf_crm.list_cases(oem=OEM)}
    assert statuses == {
        a: CrmStatus.INVALID_DATA,
        b: CrmStatus.HUMAN_SUBMITTED,
        c: CrmStatus.SUBMITTED,
    }
    assert [h.kind for h in sf_crm.history(b)] == ["human_submission"]


def test_a_due_date_entered_in_the_org_reaches_the_case_as_utc(
    salesforce: SalesforceServer, desk: CaseDesk, sf_crm: SalesforceCrm
):
    """Salesforce hands a DateTime field back as `2026-12-01T09:30:00.000+0000`, a Date field
    as `2026-12-01`; a case without one has none."""
    desk.add_case(case_record(1, due_date="2026-12-01T10:30:00.000+0100"))
    desk.add_case(case_record(2, due_date="2026-12-01"))
    desk.add_case(case_record(3))
    assert desk.record("CASE-00001")["Submission_Due_Date__c"] == "2026-12-01T10:30:00.000+0100"
    desk.org.advance(2)

    cases = [validate_case(r.raw) for r in sf_crm.list_new_cases(OEM, None, limit=10).records]

    assert [c.due_date for c in cases] == [
        datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        datetime(2026, 12, 2, tzinfo=UTC),
        None,
    ]
