"""The embedded CRM's contract: a cursor feed of new cases, idempotent write-backs, a true log."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from submissions_pipeline.crm import (
    CaseNotFound,
    CrmConflict,
    CrmStatus,
    CrmUpdate,
    EmbeddedCrm,
    InvalidCrmRecord,
    InvalidCursor,
    NotATestRecord,
)
from submissions_pipeline.domain import (
    CaseValidationError,
    FailureObject,
    ReasonCode,
    validate_case,
)
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import VALID_VINS, case_record


def _read_all(crm: EmbeddedCrm, oem: str, cursor: str | None, limit: int = 500):
    """Drain the feed page by page, as the sensor does; returns (case ids, final cursor)."""
    seen: list[str] = []
    while True:
        page = crm.list_new_cases(oem, cursor, limit=limit)
        if not page.records:
            return seen, page.next_cursor
        seen += [r.case_id for r in page.records]
        cursor = page.next_cursor


def _submitted(case_id: str, reference: str = "NW-2026-000001") -> CrmUpdate:
    return CrmUpdate(
        case_id=case_id,
        job_id="job-1",
        status=CrmStatus.SUBMITTED,
        reference=reference,
        evidence_url=f"file:///evidence/{case_id}/manifest.json",
        submitted_by_automation=True,
    )


def test_the_job_store_migration_creates_the_crm_in_the_same_database(db_url):
    store = JobStore.from_url(db_url)
    crm = EmbeddedCrm(store.engine)
    crm.add_case(case_record(1))
    assert crm.get_case("CASE-00001").status is CrmStatus.NEW
    store.dispose()


def test_cursor_returns_each_new_case_once_in_order_and_only_for_that_oem(crm: EmbeddedCrm):
    ids = [
        crm.add_case(case_record(n, oem="aurora" if n % 3 == 0 else "northwind"))
        for n in range(1, 13)
    ]
    northwind = [i for n, i in enumerate(ids, start=1) if n % 3 != 0]

    seen, cursor = _read_all(crm, "northwind", None, limit=3)
    assert seen == northwind
    assert _read_all(crm, "northwind", cursor)[0] == []

    crm.add_case(case_record(99, oem="northwind"))
    assert _read_all(crm, "northwind", cursor)[0] == ["CASE-00099"]
    assert _read_all(crm, "aurora", None)[0] == [i for i in ids if i not in northwind]


def test_the_feed_holds_only_cases_still_new(crm: EmbeddedCrm):
    for n in (1, 2, 3):
        crm.add_case(case_record(n))
    crm.write_back(CrmUpdate(case_id="CASE-00002", job_id="j2", status=CrmStatus.IN_PROGRESS))
    assert _read_all(crm, "northwind", None)[0] == ["CASE-00001", "CASE-00003"]


def test_an_empty_page_keeps_the_cursor_and_a_foreign_cursor_is_refused(crm: EmbeddedCrm):
    assert crm.list_new_cases("northwind", None).next_cursor is None
    crm.add_case(case_record(1))
    cursor = crm.list_new_cases("northwind", None).next_cursor
    assert crm.list_new_cases("northwind", cursor).next_cursor == cursor
    with pytest.raises(InvalidCursor):
        crm.list_new_cases("northwind", "2026-11-26T02:00:00Z")


def test_invalid_records_are_held_as_entered_and_readding_the_same_case_changes_nothing(
    crm: EmbeddedCrm,
):
    raw = case_record(1, dealer_id="dealer 12")
    del raw["vin"]
    assert crm.add_case(raw) == "CASE-00001"
    first = crm.get_case("CASE-00001")
    assert first.raw == raw and first.revision == 1 and not first.changed

    assert crm.add_case(dict(reversed(raw.items()))) == "CASE-00001"  # same content
    again = crm.get_case("CASE-00001")
    assert again == first
    assert len(crm.list_cases()) == 1 and crm.history("CASE-00001") == []

    with pytest.raises(CaseValidationError) as err:
        validate_case(again.raw)
    assert set(err.value.as_dict()) == {"vin", "dealer_id"}


def test_a_record_without_case_id_or_oem_cannot_be_filed(crm: EmbeddedCrm):
    with pytest.raises(InvalidCrmRecord):
        crm.add_case({k: v for k, v in case_record(1).items() if k != "case_id"})
    with pytest.raises(InvalidCrmRecord):
        crm.add_case(case_record(1, oem=""))
    assert crm.list_cases() == []


def test_the_same_write_back_twice_changes_and_logs_once(crm: EmbeddedCrm, clock):
    crm.add_case(case_record(1))
    assert crm.write_back(_submitted("CASE-00001")) is True
    clock.advance(60)
    assert crm.write_back(_submitted("CASE-00001")) is False

    case = crm.get_case("CASE-00001")
    assert case.status is CrmStatus.SUBMITTED and case.reference == "NW-2026-000001"
    assert case.submitted_by_automation and case.submitted_by == "automation"
    (entry,) = crm.history("CASE-00001")
    assert entry.kind == "write_back" and entry.job_id == "job-1"
    assert entry.changes["status"] == {"from": "new", "to": "submitted"}
    assert entry.changes["reference"] == {"from": None, "to": "NW-2026-000001"}
    assert case.updated_at == entry.at  # the no-op write did not touch the case


def test_a_different_write_back_changes_the_case_and_logs_one_more_row(crm: EmbeddedCrm):
    crm.add_case(case_record(1))
    crm.write_back(CrmUpdate(case_id="CASE-00001", job_id="job-1", status=CrmStatus.IN_PROGRESS))
    assert crm.write_back(_submitted("CASE-00001")) is True
    history = crm.history("CASE-00001")
    assert [h.status for h in history] == [CrmStatus.IN_PROGRESS, CrmStatus.SUBMITTED]
    assert "job_id" not in history[1].changes  # only what changed is logged


def test_invalid_data_goes_back_with_field_messages_and_the_failure(crm: EmbeddedCrm):
    crm.add_case(case_record(1, dealer_id="dealer 12"))
    failure = FailureObject.of(
        ReasonCode.CASE_INVALID, "dealer id", field_errors={"dealer_id": "bad pattern"}
    )
    update = CrmUpdate(
        case_id="CASE-00001",
        status=CrmStatus.INVALID_DATA,
        failure=failure,
        field_errors={"dealer_id": "bad pattern"},
    )
    assert crm.write_back(update) is True
    assert crm.write_back(update) is False
    case = crm.get_case("CASE-00001")
    assert case.status is CrmStatus.INVALID_DATA
    assert case.field_errors == {"dealer_id": "bad pattern"}
    assert case.failure == failure
    assert not case.submitted_by_automation


def test_concurrent_identical_write_backs_record_exactly_one_activity_row(crm: EmbeddedCrm):
    crm.add_case(case_record(1))
    writers = 8
    barrier = threading.Barrier(writers)

    def write() -> bool:
        barrier.wait(timeout=30)
        return crm.write_back(_submitted("CASE-00001"))

    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(lambda _: write(), range(writers)))
    assert sorted(results) == [False] * (writers - 1) + [True]
    assert len(crm.history("CASE-00001")) == 1


def test_concurrent_adds_are_each_read_exactly_once_by_a_reader_polling_meanwhile(
    crm: EmbeddedCrm,
):
    writers, per_writer = 4, 15
    done = threading.Event()
    seen: list[str] = []

    def poll() -> None:
        cursor = None
        while True:
            finished = done.is_set()
            page = crm.list_new_cases("northwind", cursor)
            seen.extend(r.case_id for r in page.records)
            cursor = page.next_cursor
            if finished and not page.records:
                return

    def add(w: int) -> None:
        for n in range(per_writer):
            crm.add_case(case_record(w * 100 + n))

    reader = threading.Thread(target=poll)
    reader.start()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(add, range(writers)))
    done.set()
    reader.join(timeout=60)
    assert sorted(seen) == sorted(r.case_id for r in crm.list_cases())
    assert len(seen) == writers * per_writer


def test_a_human_submission_is_recorded_as_not_by_automation(crm: EmbeddedCrm):
    crm.add_case(case_record(1))
    crm.write_back(
        CrmUpdate(
            case_id="CASE-00001",
            job_id="job-1",
            status=CrmStatus.NEEDS_ATTENTION,
            failure=FailureObject.of(ReasonCode.SELECTOR_NOT_FOUND, "submit button"),
        )
    )
    assert crm.record_human_submission("CASE-00001", "NW-2026-000777", by="m.jensen") is True
    assert crm.record_human_submission("CASE-00001", "NW-2026-000777", by="m.jensen") is False

    case = crm.get_case("CASE-00001")
    assert case.status is CrmStatus.HUMAN_SUBMITTED
    assert case.reference == "NW-2026-000777"
    assert case.submitted_by_automation is False and case.submitted_by == "m.jensen"
    last = crm.history("CASE-00001")[-1]
    assert last.kind == "human_submission" and last.actor == "m.jensen"
    assert len(crm.history("CASE-00001")) == 2


def test_automation_cannot_overwrite_a_case_a_human_submitted(crm: EmbeddedCrm):
    crm.add_case(case_record(1))
    crm.record_human_submission("CASE-00001", "NW-2026-000777", by="m.jensen")
    with pytest.raises(CrmConflict):
        crm.write_back(_submitted("CASE-00001", reference="NW-2026-000778"))
    assert crm.get_case("CASE-00001").reference == "NW-2026-000777"


def test_a_human_cannot_record_a_second_submission_of_an_automated_one(crm: EmbeddedCrm):
    crm.add_case(case_record(1))
    crm.write_back(_submitted("CASE-00001"))
    with pytest.raises(CrmConflict):
        crm.record_human_submission("CASE-00001", "NW-2026-000999", by="m.jensen")
    assert crm.get_case("CASE-00001").submitted_by_automation


def test_the_pipeline_cannot_write_new_or_human_submitted():
    for status in (CrmStatus.NEW, CrmStatus.HUMAN_SUBMITTED):
        with pytest.raises(ValueError):
            CrmUpdate(case_id="CASE-00001", status=status)


def test_a_reset_test_record_comes_back_once_at_the_end_of_the_feed(crm: EmbeddedCrm):
    crm.add_case(case_record(1, test_record=True))
    crm.add_case(case_record(2))
    seen, cursor = _read_all(crm, "northwind", None)
    assert seen == ["CASE-00001", "CASE-00002"]
    crm.write_back(_submitted("CASE-00001"))

    reset = crm.reset_test_record("CASE-00001")
    assert reset.status is CrmStatus.NEW and reset.reference is None
    assert not reset.submitted_by_automation
    seen, cursor = _read_all(crm, "northwind", cursor)
    assert seen == ["CASE-00001"]
    assert _read_all(crm, "northwind", cursor)[0] == []
    assert [h.kind for h in crm.history("CASE-00001")] == ["write_back", "test_record_reset"]
    assert crm.history("CASE-00001")[-1].changes["status"] == {"from": "submitted", "to": "new"}


def test_only_test_records_can_be_reset(crm: EmbeddedCrm):
    crm.add_case(case_record(1))
    crm.write_back(_submitted("CASE-00001"))
    with pytest.raises(NotATestRecord):
        crm.reset_test_record("CASE-00001")
    assert crm.get_case("CASE-00001").status is CrmStatus.SUBMITTED


def test_unknown_cases_are_reported_as_such(crm: EmbeddedCrm):
    with pytest.raises(CaseNotFound):
        crm.get_case("NOPE")
    with pytest.raises(CaseNotFound):
        crm.write_back(_submitted("NOPE"))
    with pytest.raises(CaseNotFound):
        crm.record_human_submission("NOPE", "R-1", by="m.jensen")
    assert crm.history("NOPE") == []


def test_cases_no_registered_oem_reads_are_counted_by_their_exact_key(crm: EmbeddedCrm):
    for n, oem in enumerate(
        ["northwind", "Northwind", "Northwind", " northwind", "zephyr", "aurora"], start=1
    ):
        crm.add_case(case_record(n, oem=oem))
    crm.write_back(CrmUpdate(case_id="CASE-00005", status=CrmStatus.FAILED))  # answered

    assert crm.count_unrouted_cases(["aurora", "kestrel", "northwind"]) == {
        " northwind": 1,
        "Northwind": 2,
    }
    crm.add_case(case_record(5, oem="zephyr", vin=VALID_VINS[4]))  # changed: waiting again
    assert crm.count_unrouted_cases(["northwind"]) == {
        " northwind": 1,
        "Northwind": 2,
        "aurora": 1,
        "zephyr": 1,
    }
    assert crm.count_unrouted_cases([]) == {
        " northwind": 1,
        "Northwind": 2,
        "aurora": 1,
        "northwind": 1,
        "zephyr": 1,
    }
