"""Case identity is exact end to end: a case id or an OEM key that cannot be used as it is
filed comes back to the CRM as invalid data on that field, and never becomes, or overwrites,
another case's job, claim or CRM record."""

from __future__ import annotations

from pathlib import Path

import pytest

from submissions_pipeline.artifacts import LocalArtifactStore
from submissions_pipeline.assets.crm_cases import intake_case
from submissions_pipeline.assets.crm_outcomes import outcome_update
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
from submissions_pipeline.domain import SubmissionState
from submissions_pipeline.runner import run_batch
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import VALID_VINS, case_record, quick_config

S = SubmissionState
FIRST_VIN, SECOND_VIN = VALID_VINS[0], VALID_VINS[1]

#: Ids that read as "DUP-2" once trimmed, folded or normalised, but are other CRM records.
TWINS = [
    " DUP-2",
    "DUP-2 ",
    "DUP-2\t",
    "DUP-2\n",
    "DUP-2\u200b",  # zero-width space
    "\uff24\uff35\uff30-2",  # fullwidth letters: NFKC makes them DUP-2
]


def _intake_all(crm: EmbeddedCrm, store: JobStore, home: Path, oem: str = "northwind") -> list:
    artifacts = LocalArtifactStore(home / "artifacts")
    return [
        intake_case(r, store=store, crm=crm, artifacts=artifacts, actor="test", oem=oem)
        for r in crm.list_new_cases(oem, None).records
    ]


@pytest.mark.parametrize("twin", TWINS, ids=ascii)
def test_an_id_that_cannot_be_used_as_filed_never_files_another_cases_claim(db_url, tmp_path, twin):
    store = JobStore.from_url(db_url)
    crm = EmbeddedCrm(store.engine)
    crm.add_case(case_record(1, case_id=twin, vin=FIRST_VIN))
    crm.add_case(case_record(2, case_id="DUP-2", vin=SECOND_VIN))

    rows = _intake_all(crm, store, tmp_path)

    assert [(r["case_id"], r["valid"]) for r in rows] == [(twin, False), ("DUP-2", True)]
    [job] = store.list_jobs()
    assert (job.case_id, job.vin) == ("DUP-2", SECOND_VIN)
    bad = crm.get_case(twin)
    assert bad.status is CrmStatus.INVALID_DATA and bad.job_id is None
    assert set(bad.field_errors) == {"case_id"} and bad.field_errors["case_id"]
    assert bad.failure.field_errors == bad.field_errors
    good = crm.get_case("DUP-2")
    assert good.status is CrmStatus.IN_PROGRESS and good.job_id == job.job_id
    assert [h.job_id for h in crm.history("DUP-2")] == [job.job_id]  # written once, by its own
    store.dispose()


def test_ids_in_different_unicode_forms_are_both_refused_not_merged(db_url, tmp_path):
    store = JobStore.from_url(db_url)
    crm = EmbeddedCrm(store.engine)
    composed, decomposed = "CAF\u00c9-1", "CAFE\u0301-1"
    crm.add_case(case_record(1, case_id=composed))
    crm.add_case(case_record(2, case_id=decomposed))
    assert {c.case_id for c in crm.list_cases()} == {composed, decomposed}

    _intake_all(crm, store, tmp_path)

    assert store.list_jobs() == []
    for case_id in (composed, decomposed):
        case = crm.get_case(case_id)
        assert case.status is CrmStatus.INVALID_DATA
        assert "alphabet" in case.field_errors["case_id"]
    store.dispose()


def test_whitespace_twins_reach_the_portal_as_one_claim_carrying_its_own_data(
    runner_deps, sandbox, tmp_path
):
    """The reported incident, through a real browser and portal: ' DUP-2' and 'DUP-2'."""
    store = runner_deps.store
    crm = EmbeddedCrm(store.engine)
    crm.add_case(case_record(1, case_id=" DUP-2", vin=FIRST_VIN))
    crm.add_case(case_record(2, case_id="DUP-2", vin=SECOND_VIN))
    _intake_all(crm, store, tmp_path)

    run_batch(quick_config(oem="northwind"), runner_deps)

    [entry] = sandbox.ledger("northwind")
    assert (entry.case_id, entry.vin) == ("DUP-2", SECOND_VIN)
    [job] = store.list_jobs()
    assert job.state is S.EVIDENCE_STORED and job.reference == entry.reference
    crm.write_back(outcome_update(job, runner_deps.artifacts))
    good = crm.get_case("DUP-2")
    assert good.status is CrmStatus.SUBMITTED and good.reference == entry.reference
    twin = crm.get_case(" DUP-2")
    assert twin.status is CrmStatus.INVALID_DATA and "whitespace" in twin.field_errors["case_id"]
