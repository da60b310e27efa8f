"""The nightly job end to end with SUBMISSIONS_CRM=salesforce: cases from the local org,
submitted through the sandbox portals with real Chromium, outcomes written back to the org.

Runs on SQLite and on PostgreSQL (the job store); the portals' ledger and the org's ledger are
the ground truth of what was submitted and what was written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance

from sandbox import SandboxServer
from sandbox.salesforce import CLIENT_ID, USERNAME, SalesforceServer
from sandbox.salesforce.desk import CaseDesk
from submissions_pipeline.crm import CrmStatus, seed_demo_cases
from submissions_pipeline.crm.salesforce import SalesforceCrm
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.domain import SubmissionState
from submissions_pipeline.resource_sets import resource_set
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.salesforce.conftest import salesforce_settings

pytestmark = pytest.mark.browser
OEM = "northwind"
ACTIVITY = "Submission_Activity__c"


def _metadata(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat.asset_key.path[-1] == asset:
            return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    raise AssertionError(f"{asset} not materialized")


def _case_writes(server: SalesforceServer) -> list:
    return [e for e in server.ledger("Case")]


def test_the_nightly_job_takes_cases_from_salesforce_and_writes_outcomes_back_once(
    db_url: str,
    tmp_path: Path,
    sandbox: SandboxServer,
    sandbox_credentials: Path,
    salesforce: SalesforceServer,
    desk: CaseDesk,
    instance: DagsterInstance,
):
    settings = salesforce_settings(salesforce, db_url, tmp_path)
    resources = resource_set(
        settings, portal_urls=sandbox.urls, credentials_file=str(sandbox_credentials)
    )
    crm = resources["crm"].get_client()
    assert isinstance(crm, SalesforceCrm)
    seeded = seed_demo_cases(desk, oems=[OEM], per_oem=6)  # 3 valid (2 test records), 3 invalid
    salesforce.org.advance(2)  # intake reads only seconds the org has finished
    job = build_definitions(resources).resolve_job_def("submissions_nightly")

    result = job.execute_in_process(partition_key=OEM, instance=instance, raise_on_error=False)

    assert result.success
    portal = {e.case_id: e.reference for e in sandbox.ledger(OEM)}
    assert len(portal) == 3 and sandbox.duplicates(OEM) == []
    store = JobStore.from_url(db_url)
    jobs = {j.case_id: j for j in store.list_jobs(oem=OEM)}
    for case in crm.list_cases(oem=OEM):
        if case.case_id in seeded.invalid_fields:
            assert case.status is CrmStatus.INVALID_DATA
            assert seeded.invalid_fields[case.case_id] in case.field_errors
            continue
        assert case.status is CrmStatus.SUBMITTED and case.submitted_by_automation
        assert case.reference == portal[case.case_id]
        job_id = jobs[case.case_id].job_id
        assert case.evidence_url == f"https://console.example/jobs/{job_id}"  # durable link
        history = crm.history(case.case_id)
        assert [(a.job_id, a.status) for a in history] == [
            (job_id, CrmStatus.IN_PROGRESS),
            (job_id, CrmStatus.SUBMITTED),
        ]
    assert {j.state for j in jobs.values()} == {SubmissionState.CRM_UPDATED}
    assert _metadata(result, "crm_updates")["release_verdict"] == "clean"
    written = len(salesforce.ledger())

    again = job.execute_in_process(partition_key=OEM, instance=instance, raise_on_error=False)

    assert again.success and _metadata(again, "crm_cases")["cases_read"] == 0
    assert len(sandbox.ledger(OEM)) == 3
    assert len(salesforce.ledger()) == written  # nothing written twice
    store.dispose()


def test_a_run_killed_during_the_crm_write_is_written_once_by_the_next_run(
    sqlite_url: str,
    tmp_path: Path,
    sandbox: SandboxServer,
    sandbox_credentials: Path,
    salesforce: SalesforceServer,
    desk: CaseDesk,
):
    # the nightly run in a process of its own, configured from the environment as in
    # production, SIGKILLed by a failpoint right after its first write reached the org
    seed_demo_cases(desk, oems=[OEM], per_oem=6)
    salesforce.org.advance(2)  # intake reads only seconds the org has finished
    env = {
        **os.environ,
        "SUBMISSIONS_HOME": str(tmp_path),
        "SUBMISSIONS_DB_URL": sqlite_url,
        "SUBMISSIONS_CRM": "salesforce",
        "SUBMISSIONS_SALESFORCE_TOKEN_URL": salesforce.token_url,
        "SUBMISSIONS_SALESFORCE_AUTH_FLOW": "jwt",
        "SUBMISSIONS_SALESFORCE_CLIENT_ID": CLIENT_ID,
        "SUBMISSIONS_SALESFORCE_USERNAME": USERNAME,
        "SUBMISSIONS_SALESFORCE_PRIVATE_KEY": salesforce.private_key_pem.decode(),
        "SUBMISSIONS_SALESFORCE_CA_FILE": str(salesforce.ca_file),
    }
    child = [sys.executable, "-m", "submissions_pipeline_tests.nightly_child", OEM]
    child += [json.dumps(sandbox.urls), str(sandbox_credentials), str(tmp_path / "dagster")]

    killed = subprocess.run(
        child,
        env={**env, "SUBMISSIONS_FAILPOINTS": "during_crm_write"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    settings = salesforce_settings(salesforce, sqlite_url, tmp_path)
    resources = resource_set(
        settings, portal_urls=sandbox.urls, credentials_file=str(sandbox_credentials)
    )
    crm = resources["crm"].get_client()
    submitted = CrmStatus.SUBMITTED
    assert len([c for c in crm.list_cases(oem=OEM) if c.status is submitted]) == 1
    store = JobStore.from_url(sqlite_url, migrate_schema=False)
    assert {j.state for j in store.list_jobs()} == {SubmissionState.EVIDENCE_STORED}

    again = subprocess.run(child, env=env, capture_output=True, text=True, timeout=300)

    assert again.returncode == 0, again.stderr[-2000:]
    assert {j.state for j in store.list_jobs()} == {SubmissionState.CRM_UPDATED}
    picklist = crm.mapping.picklist(submitted)
    to_submitted = [e for e in _case_writes(salesforce) if e.fields.get("Status") == picklist]
    assert sorted(e.id for e in to_submitted) == sorted(
        desk.record(c.case_id)["Id"] for c in crm.list_cases(oem=OEM) if c.status is submitted
    )
    assert len(to_submitted) == 3 and len(sandbox.ledger(OEM)) == 3
    assert sandbox.duplicates(OEM) == []
    outcomes = [r for r in salesforce.records(ACTIVITY) if r["Status__c"] == picklist]
    assert len(outcomes) == 3
    store.dispose()
