"""The whole graph, materialized in-process against the sandbox portals with real Chromium.

Runs on SQLite and on PostgreSQL (the project database); the sandbox's ledger is the ground
truth of what the portals received.
"""

from pathlib import Path

import pytest
from dagster import AssetCheckSeverity, DagsterInstance

from sandbox import SandboxServer
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm, seed_demo_cases
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.demo import run_nightly
from submissions_pipeline.domain import SubmissionState
from submissions_pipeline.links import DEFAULT_CONSOLE_URL
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import (
    OEM,
    check_result,
    make_resources,
    metadata_of,
)

pytestmark = pytest.mark.browser
S = SubmissionState


def test_the_nightly_graph_submits_each_case_once_with_proof_and_writes_it_back(
    db_url: str,
    tmp_path: Path,
    worker_home: Path,
    sandbox: SandboxServer,
    sandbox_credentials: Path,
    instance: DagsterInstance,
):
    crm = EmbeddedCrm.from_url(db_url)
    store = JobStore.from_url(db_url)
    seeded = seed_demo_cases(crm, oems=[OEM], per_oem=6)  # 3 valid (2 test records), 3 invalid
    resources = make_resources(
        db_url,
        tmp_path / "artifacts",
        worker_home=worker_home,
        portal_urls=sandbox.urls,
        credentials_file=sandbox_credentials,
    )
    job = build_definitions(resources).resolve_job_def("submissions_nightly")

    result = job.execute_in_process(partition_key=OEM, instance=instance, raise_on_error=False)

    assert result.success
    ledger = {e.case_id: e.reference for e in sandbox.ledger(OEM)}
    assert len(ledger) == seeded.per_oem[OEM].valid == 3 and sandbox.duplicates(OEM) == []
    for case in crm.list_cases(oem=OEM):
        if case.case_id in seeded.invalid_fields:
            assert case.status is CrmStatus.INVALID_DATA
            assert seeded.invalid_fields[case.case_id] in case.field_errors
            continue
        assert case.status is CrmStatus.SUBMITTED and case.submitted_by_automation
        assert case.reference == ledger[case.case_id]
        stored = next(j for j in store.list_jobs(oem=OEM) if j.case_id == case.case_id)
        assert case.evidence_url == f"{DEFAULT_CONSOLE_URL}/jobs/{stored.job_id}"
        root = Path(resources["artifacts"].root)
        assert all((root / i["key"]).is_file() for i in stored.evidence["items"])
    assert {j.state for j in store.list_jobs(oem=OEM)} == {S.CRM_UPDATED}

    runs = metadata_of(result, "submission_runs")
    assert runs["attempts"] == 3 and runs["state_evidence_stored"] == 3
    assert runs["fail_rate"] == 0.0 and runs["jobs_per_hour"] > 0
    assert runs["p95_job_s"] >= runs["p50_job_s"] > 0
    assert metadata_of(result, "evidence_bundles")["complete"] == 3
    assert metadata_of(result, "crm_updates")["release_verdict"] == "clean"
    for name in ("evidence_completeness", "queue_age", "zero_orphaned_jobs", "error_budget"):
        assert check_result(result, name).passed, name
    soak = check_result(result, "soak")
    assert not soak.passed and soak.severity is AssetCheckSeverity.WARN  # 3 of 1,000 jobs

    # The same run again: nothing new, nothing resubmitted, nothing written twice.
    again = job.execute_in_process(partition_key=OEM, instance=instance, raise_on_error=False)
    assert again.success
    assert len(sandbox.ledger(OEM)) == 3
    assert metadata_of(again, "crm_cases")["cases_read"] == 0
    assert metadata_of(again, "submission_runs")["workers"] == 0
    assert metadata_of(again, "crm_updates")["release_verdict"] == "idle"
    gate = check_result(again, "release_gate")
    assert gate.metadata["consecutive_clean_runs"].value == 1
    crm.dispose()
    store.dispose()


def test_make_run_submits_every_oem_and_prints_where_the_proof_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SUBMISSIONS_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "var" / "dagster"))
    monkeypatch.delenv("SUBMISSIONS_DB_URL", raising=False)
    printed: list[str] = []

    summary = run_nightly(per_oem=6, echo=printed.append)

    assert summary.ok
    assert set(summary.runs) == {"northwind", "aurora", "kestrel"}
    assert summary.cases == 18
    assert len(summary.submitted) == 9 and all(s.reference for s in summary.submitted)
    assert summary.failures_by_reason == {"case_invalid": 9}
    assert summary.evidence_location == str(tmp_path / "var" / "artifacts" / "dev")
    text = printed[-1]
    assert "Submitted with references: 9" in text and "case_invalid 9" in text
    credentials = tmp_path / "var" / "sandbox-credentials.json"
    assert credentials.stat().st_mode & 0o777 == 0o600
    secrets = credentials.read_text()
    assert all(s not in secrets for s in printed)  # nothing secret was printed
    assert (tmp_path / "var" / "dagster" / "dagster.yaml").exists()
