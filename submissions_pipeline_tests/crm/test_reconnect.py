"""The embedded CRM survives dropped PostgreSQL connections like the job store: an operation
whose connection is terminated between or inside its statements re-runs, and nothing is
written twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from submissions_pipeline.crm import ChangedAfterSubmission, CrmStatus, CrmUpdate, EmbeddedCrm
from submissions_pipeline_tests.factories import VALID_VINS, case_record
from submissions_pipeline_tests.pgfaults import ConnectionKiller


@pytest.fixture
def killer(pg_url: str) -> Iterator[ConnectionKiller]:
    k = ConnectionKiller(pg_url)
    yield k
    k.dispose()


@pytest.fixture
def pg_crm(pg_url: str, clock) -> Iterator[EmbeddedCrm]:
    c = EmbeddedCrm.from_url(pg_url, clock=clock)
    yield c
    c.dispose()


def writes(table: str):
    return lambda sql: sql.lstrip().upper().startswith(("INSERT", "UPDATE")) and table in sql


def submitted(case_id: str) -> CrmUpdate:
    return CrmUpdate(
        case_id=case_id,
        job_id="job-1",
        status=CrmStatus.SUBMITTED,
        reference="NW-2026-000001",
        evidence_url="file:///evidence/manifest.json",
        submitted_by_automation=True,
    )


@pytest.mark.parametrize(
    "cut",
    [
        {"when": writes("crm_cases")},  # before the case row is written
        {"when": writes("crm_activity")},  # the case row written, its log row not yet
        {"at_commit": True},
    ],
    ids=["before-update", "before-log", "at-commit"],
)
def test_a_write_back_cut_mid_transaction_is_written_once(pg_crm, killer, cut):
    pg_crm.add_case(case_record(1))

    with killer.inside(pg_crm.engine, **cut):
        assert pg_crm.write_back(submitted("CASE-00001")) is True

    assert killer.killed == 1
    case = pg_crm.get_case("CASE-00001")
    assert case.status is CrmStatus.SUBMITTED and case.reference == "NW-2026-000001"
    assert [h.kind for h in pg_crm.history("CASE-00001")] == ["write_back"]
    assert pg_crm.write_back(submitted("CASE-00001")) is False


def test_cases_added_and_revised_through_cuts_exist_once(pg_crm, killer):
    with killer.inside(pg_crm.engine, writes("crm_cases")):
        pg_crm.add_case(case_record(1))
    with killer.inside(pg_crm.engine, writes("crm_activity")):
        pg_crm.add_case(case_record(1, vin=VALID_VINS[3]))

    assert killer.killed == 2
    [case] = pg_crm.list_cases()
    assert case.revision == 2 and case.raw["vin"] == VALID_VINS[3]
    assert [h.kind for h in pg_crm.history("CASE-00001")] == ["case_revised"]


def test_flags_human_submissions_and_resets_through_cuts_are_recorded_once(pg_crm, killer):
    pg_crm.add_case(case_record(1, test_record=True))
    pg_crm.add_case(case_record(2))
    pg_crm.write_back(submitted("CASE-00001"))
    flag = ChangedAfterSubmission(revision=1, job_id="job-1", message="changed", fields={})

    for operation in (
        lambda: pg_crm.reset_test_record("CASE-00001"),
        lambda: pg_crm.flag_changed_after_submission("CASE-00002", flag),
        lambda: pg_crm.record_human_submission("CASE-00002", "NW-2026-000777", by="m.jensen"),
    ):
        with killer.inside(pg_crm.engine, writes("crm_activity")):
            operation()

    assert killer.killed == 3
    assert [h.kind for h in pg_crm.history("CASE-00001")] == ["write_back", "test_record_reset"]
    assert [h.kind for h in pg_crm.history("CASE-00002")] == [
        "changed_after_submission",
        "human_submission",
    ]


def test_reads_survive_a_cut_and_connections_terminated_between_operations(pg_crm, killer):
    for n in (1, 2):
        pg_crm.add_case(case_record(n))
    pg_crm.write_back(submitted("CASE-00001"))

    for read, expect in (
        (
            lambda: [r.case_id for r in pg_crm.list_new_cases("northwind", None).records],
            ["CASE-00002"],
        ),
        (lambda: pg_crm.get_case("CASE-00001").status, CrmStatus.SUBMITTED),
        (lambda: len(pg_crm.list_cases()), 2),
        (lambda: len(pg_crm.history("CASE-00001")), 1),
    ):
        with killer.inside(pg_crm.engine, lambda sql: sql.lstrip().upper().startswith("SELECT")):
            assert read() == expect
        assert killer.terminate_all() >= 1  # and between operations: the pool holds dead ones
        assert read() == expect
