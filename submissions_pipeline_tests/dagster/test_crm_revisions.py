"""A case that changes in the CRM is re-validated at intake: its job takes the new version
while no worker holds it, is withdrawn when the new version is invalid, and once the claim is
(or may be) on the portal the case is flagged for a person and nothing is resubmitted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetSelection, DagsterInstance

from submissions_pipeline.artifacts import LocalArtifactStore
from submissions_pipeline.assets import crm_cases
from submissions_pipeline.assets.crm_cases import intake_case
from submissions_pipeline.assets.crm_outcomes import outcome_update
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
from submissions_pipeline.domain import FailureObject, ReasonCode, Step, SubmissionState
from submissions_pipeline.runner import run_batch
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import metadata_of, run_selection
from submissions_pipeline_tests.factories import VALID_VINS, case_record, quick_config

S = SubmissionState
OLD_VIN, NEW_VIN = VALID_VINS[1], VALID_VINS[3]


class Intake:
    """The project database's store and CRM, and intake as crm_cases runs it for northwind."""

    def __init__(self, url: str, home: Path):
        self.store = JobStore.from_url(url)
        self.crm = EmbeddedCrm(self.store.engine)
        self.artifacts = LocalArtifactStore(home / "artifacts")

    def run(self) -> list[dict[str, Any]]:
        return [
            intake_case(
                r,
                store=self.store,
                crm=self.crm,
                artifacts=self.artifacts,
                actor="intake",
                oem="northwind",
            )
            for r in self.crm.list_new_cases("northwind", None).records
        ]

    def add_and_take_in(self, n: int = 1, **overrides: Any) -> str:
        self.crm.add_case(case_record(n, **overrides))
        [row] = self.run()
        return row["job_id"]

    def submit(self, job_id: str, reference: str = "NW-2026-000001") -> None:
        """As a worker that submitted the claim and stored its evidence."""
        self.store.claim("w1", oem="northwind")
        self.store.record_milestone(job_id, "w1", Step.SUBMIT_CLICKED)
        self.store.transition(
            job_id, S.SUBMITTED, actor="w1", lease_owner="w1", reference=reference
        )
        self.store.transition(job_id, S.EVIDENCE_STORED, actor="w1", lease_owner="w1")


@pytest.fixture
def intake(db_url: str, tmp_path: Path) -> Iterator[Intake]:
    it = Intake(db_url, tmp_path)
    yield it
    it.store.dispose()


def test_a_queued_job_takes_the_changed_case_before_any_worker_sees_it(intake: Intake):
    job_id = intake.add_and_take_in(1, vin=OLD_VIN)
    intake.crm.add_case(case_record(1, vin=NEW_VIN))

    [row] = intake.run()

    assert (row["job_id"], row["revision_note"], row["crm_status"]) == (
        job_id,
        "revised",
        "in_progress",
    )
    [job] = intake.store.list_jobs()
    assert job.job_id == job_id and job.vin == NEW_VIN and job.state is S.QUEUED
    case = intake.crm.get_case("CASE-00001")
    assert case.status is CrmStatus.IN_PROGRESS and not case.changed
    assert intake.run() == []  # answered: out of the feed


def test_a_case_changed_after_submission_is_flagged_and_never_resubmitted(intake: Intake):
    job_id = intake.add_and_take_in(1, vin=OLD_VIN)
    intake.submit(job_id)
    intake.crm.add_case(case_record(1, vin=NEW_VIN))

    [row] = intake.run()

    assert row["revision_note"] == "changed after submission"
    [job] = intake.store.list_jobs()  # no second job
    assert job.vin == OLD_VIN and job.state is S.EVIDENCE_STORED
    case = intake.crm.get_case("CASE-00001")
    assert case.status is CrmStatus.NEEDS_ATTENTION and not case.changed
    flag = case.changed_after_submission
    assert flag.revision == 2 and flag.job_id == job_id and set(flag.fields) == {"vin"}
    assert "after it was submitted" in flag.message and "NW-2026-000001" in flag.message
    assert intake.run() == []

    # The proven submission is still written back; the case keeps asking for a person.
    intake.crm.write_back(outcome_update(job, intake.artifacts))
    case = intake.crm.get_case("CASE-00001")
    assert case.status is CrmStatus.NEEDS_ATTENTION and case.reference == "NW-2026-000001"


def test_a_case_changed_while_a_worker_holds_its_job_is_flagged(intake: Intake):
    job_id = intake.add_and_take_in(1, vin=OLD_VIN)
    intake.store.claim("w1", oem="northwind")
    intake.crm.add_case(case_record(1, vin=NEW_VIN))

    [row] = intake.run()

    assert row["revision_note"] == "changed after submission"
    flag = intake.crm.get_case("CASE-00001").changed_after_submission
    assert "may already be on the portal" in flag.message and flag.job_state == "running"
    assert intake.store.get(job_id).vin == OLD_VIN


def test_an_invalid_revision_withdraws_the_queued_job_and_a_fixed_one_gets_a_new_job(
    intake: Intake,
):
    job_id = intake.add_and_take_in(1, vin=OLD_VIN)
    intake.crm.add_case(case_record(1, vin="NOT-A-VIN"))

    [row] = intake.run()

    assert (row["valid"], row["revision_note"]) == (False, "withdrawn")
    job = intake.store.get(job_id)
    assert job.state is S.FAILED_TERMINAL and job.reason_code is ReasonCode.CASE_INVALID
    assert job.crm_synced_at is not None  # posted already: crm_updates has nothing to add
    case = intake.crm.get_case("CASE-00001")
    assert case.status is CrmStatus.INVALID_DATA and set(case.field_errors) == {"vin"}
    assert not case.changed

    intake.crm.add_case(case_record(1, vin=NEW_VIN))  # a person fixes the VIN
    [row] = intake.run()
    assert row["created"] and row["job_id"] != job_id
    live = intake.store.get(row["job_id"])
    assert live.vin == NEW_VIN and live.state is S.QUEUED
    assert intake.crm.get_case("CASE-00001").job_id == live.job_id


def test_an_invalid_revision_after_submission_is_flagged_with_its_field_messages(
    intake: Intake,
):
    job_id = intake.add_and_take_in(1, vin=OLD_VIN)
    intake.submit(job_id)
    intake.crm.add_case(case_record(1, vin="NOT-A-VIN"))

    [row] = intake.run()

    assert row["revision_note"] == "changed after submission"
    case = intake.crm.get_case("CASE-00001")
    assert case.status is CrmStatus.NEEDS_ATTENTION
    assert case.changed_after_submission.fields["vin"].startswith("invalid in the new revision")
    assert intake.store.get(job_id).state is S.EVIDENCE_STORED


def test_a_case_a_person_submitted_by_hand_is_flagged_not_submitted(intake: Intake):
    intake.crm.add_case(case_record(1, vin=OLD_VIN))
    intake.crm.record_human_submission("CASE-00001", "NW-2026-000777", by="m.jensen")
    intake.crm.add_case(case_record(1, vin=NEW_VIN))

    [row] = intake.run()

    assert (row["revision_note"], row["crm_status"]) == (
        "changed after submission",
        "human_submitted",
    )
    assert intake.store.list_jobs() == []
    case = intake.crm.get_case("CASE-00001")
    assert case.status is CrmStatus.HUMAN_SUBMITTED
    assert "m.jensen submitted it by hand" in case.changed_after_submission.message


def test_a_fix_after_the_portal_refused_the_claim_is_new_work(intake: Intake):
    job_id = intake.add_and_take_in(1, vin=OLD_VIN)
    intake.store.claim("w1", oem="northwind")
    intake.store.record_failure(
        job_id,
        FailureObject.of(ReasonCode.PORTAL_VALIDATION, "mileage"),
        actor="w1",
        lease_owner="w1",
    )
    intake.crm.add_case(case_record(1, vin=NEW_VIN))

    [row] = intake.run()

    assert row["created"] and row["revision_note"] == "revised"
    assert {(j.vin, j.state) for j in intake.store.list_jobs()} == {
        (OLD_VIN, S.FAILED_TERMINAL),
        (NEW_VIN, S.QUEUED),
    }


def test_crm_cases_counts_revisions_in_its_metadata(
    resources, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm
):
    for n in (1, 2, 3):
        crm.add_case(case_record(n, vin=OLD_VIN))
    selection = AssetSelection.assets(crm_cases)
    run_selection(resources, instance, selection)
    jobs = {j.case_id: j.job_id for j in store.list_jobs()}
    store.claim("w1", oem="northwind", limit=3)
    store.transition(jobs["CASE-00002"], S.QUEUED, actor="w1", lease_owner="w1")
    store.transition(jobs["CASE-00003"], S.QUEUED, actor="w1", lease_owner="w1")
    for n, vin in ((1, NEW_VIN), (2, NEW_VIN), (3, "NOT-A-VIN")):
        crm.add_case(case_record(n, vin=vin))

    meta = metadata_of(run_selection(resources, instance, selection), "crm_cases")

    assert (meta["cases_read"], meta["revised"], meta["withdrawn"]) == (3, 1, 1)
    assert meta["changed_after_submission"] == 1


def test_portal_gets_the_new_version_of_a_queued_case_and_never_a_late_one(
    runner_deps, sandbox, tmp_path
):
    """Through a real browser and portal: a case changed after submission is not sent again,
    a case changed while queued is sent once, with its new data."""
    intake = Intake(str(runner_deps.store.engine.url), tmp_path)
    runner_deps.store = intake.store
    intake.add_and_take_in(1, vin=OLD_VIN)
    run_batch(quick_config(oem="northwind"), runner_deps)
    intake.add_and_take_in(2, vin=OLD_VIN)
    intake.crm.add_case(case_record(1, vin=NEW_VIN))
    intake.crm.add_case(case_record(2, vin=NEW_VIN))

    notes = {r["case_id"]: r["revision_note"] for r in intake.run()}
    run_batch(quick_config(oem="northwind"), runner_deps)

    assert notes == {"CASE-00001": "changed after submission", "CASE-00002": "revised"}
    assert [(e.case_id, e.vin) for e in sandbox.ledger("northwind")] == [
        ("CASE-00001", OLD_VIN),
        ("CASE-00002", NEW_VIN),
    ]
    assert {j.state for j in intake.store.list_jobs()} == {S.EVIDENCE_STORED}
    assert intake.crm.get_case("CASE-00001").status is CrmStatus.NEEDS_ATTENTION
