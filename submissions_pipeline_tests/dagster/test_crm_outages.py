"""Intake and write-back on PostgreSQL while the CRM's connections are terminated under them:
both runs succeed and the CRM logs every change exactly once."""

from __future__ import annotations

import itertools
from pathlib import Path

from dagster import AssetSelection, DagsterInstance
from sqlalchemy import Engine

from submissions_pipeline.assets import crm_cases, crm_updates, evidence_bundles
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
from submissions_pipeline.domain import SubmissionState
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import (
    arrange_proven_job,
    make_resources,
    metadata_of,
    run_selection,
)
from submissions_pipeline_tests.factories import case_record
from submissions_pipeline_tests.pgfaults import ConnectionKiller

S = SubmissionState


def test_intake_and_write_back_survive_the_crms_connections_being_cut(
    pg_url: str, tmp_path: Path, worker_home: Path, instance: DagsterInstance
):
    resources = make_resources(pg_url, tmp_path / "artifacts", worker_home=worker_home)
    store, crm = JobStore.from_url(pg_url), EmbeddedCrm.from_url(pg_url)
    artifacts = resources["artifacts"].get_store()
    proven = [arrange_proven_job(store, crm, artifacts, n).job_id for n in (1, 2, 3)]
    for n in (4, 5):
        crm.add_case(case_record(n))
    killer = ConnectionKiller(pg_url)
    log_writes = itertools.count()

    def first_try_of_each_log_write(sql: str) -> bool:
        # Every other log write: each cut operation's re-run writes the next one, which passes.
        return "INSERT INTO crm_activity" in sql and next(log_writes) % 2 == 0

    # The resources build their own engines inside the run: cut by statement, on any engine.
    with killer.inside(Engine, first_try_of_each_log_write, times=100):
        intake = run_selection(resources, instance, AssetSelection.assets(crm_cases))
        write_back = run_selection(
            resources, instance, AssetSelection.assets(evidence_bundles, crm_updates)
        )

    assert intake.success and write_back.success
    assert killer.killed == 5 + 3  # every intake and write-back write was cut once
    assert metadata_of(intake, "crm_cases")["valid"] == 5
    assert metadata_of(write_back, "crm_updates")["submitted"] == 3
    assert {store.get(j).state for j in proven} == {S.CRM_UPDATED}
    for n in (1, 2, 3, 4, 5):
        case_id = f"CASE-{n:05d}"
        statuses = [h.status for h in crm.history(case_id)]
        expected = [CrmStatus.IN_PROGRESS] + ([CrmStatus.SUBMITTED] if n <= 3 else [])
        assert statuses == expected, case_id
    killer.dispose()
    store.dispose()
    crm.dispose()
