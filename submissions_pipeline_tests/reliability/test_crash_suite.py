"""A worker SIGKILLed at each milestone: after lease expiry and reaping, every case ends truthful,
submitted exactly once, with its evidence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sandbox.accounts import credentials_document
from submissions_pipeline.domain import RetryPolicy
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.evidence import LOOKUP_SCREENSHOT, PRE_SUBMIT_SCREENSHOT
from submissions_pipeline.runner import run_batch
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import make_case, quick_config

LEASE_S = 2.0


def worker_env(runner_deps, tmp_path, failpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        "SUBMISSIONS_HOME": str(tmp_path),
        "SUBMISSIONS_DB_URL": str(runner_deps.store.engine.url),
        "SUBMISSIONS_PORTAL_URLS": json.dumps(runner_deps.portal_urls),
        "SUBMISSIONS_CREDENTIALS": json.dumps(credentials_document(list(runner_deps.portal_urls))),
        "SUBMISSIONS_FAILPOINTS": failpoint,
    }


def kill_worker_at(failpoint: str, runner_deps, tmp_path) -> None:
    """Run a real worker process that SIGKILLs itself at `failpoint`."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "submissions_pipeline.cli",
            "run-batch",
            "--oem",
            "northwind",
            "--lease-s",
            str(LEASE_S),
            "--video",
            "off",
            "--context-cap",
            "1",
        ],
        env=worker_env(runner_deps, tmp_path, failpoint),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


@pytest.mark.parametrize(
    ("failpoint", "left_in", "reconciled"),
    [
        ("before_submit", S.RUNNING, False),
        ("after_submit_click", S.RUNNING, True),
        ("after_reference", S.SUBMITTED, True),
        ("during_evidence_upload", S.SUBMITTED, True),
    ],
)
def test_killed_worker_recovers_to_one_proven_submission(
    failpoint, left_in, reconciled, runner_deps, sandbox, tmp_path
):
    store = runner_deps.store
    job_id = store.enqueue(make_case(1, oem="northwind")).job_id

    kill_worker_at(failpoint, runner_deps, tmp_path)

    dead = store.get(job_id)
    assert dead.state is left_in and dead.lease_owner is not None  # in flight, truthfully
    time.sleep(LEASE_S + 0.3)
    (reaped,) = store.reap_expired()
    assert reaped.state is (S.NEEDS_RECONCILIATION if reconciled else S.QUEUED)

    runner_deps.store.policy = RetryPolicy(time_scale=0.001)
    run_batch(quick_config(oem="northwind"), runner_deps)

    job = store.get(job_id)
    (entry,) = sandbox.ledger("northwind")  # submitted exactly once, whatever the crash
    assert job.state is S.EVIDENCE_STORED and job.reference == entry.reference
    assert job.attempt == 2 and job.submitted_by_automation
    names = {i["name"] for i in job.evidence["items"]}
    assert (LOOKUP_SCREENSHOT if reconciled else PRE_SUBMIT_SCREENSHOT) in names
    assert store.list_jobs(states=[S.RUNNING, S.SUBMITTED]) == []  # no orphan
    actors = [e.actor for e in store.events(job_id)]
    assert "reaper" in actors


NIGHTLY_IN_A_PROCESS = """
import json, sys
from pathlib import Path
from dagster import DagsterInstance
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline_tests.dagster.conftest import make_resources
db, artifacts, home, urls, creds = sys.argv[1:6]
resources = make_resources(db, Path(artifacts), worker_home=Path(home),
                           portal_urls=json.loads(urls), credentials_file=Path(creds))
job = build_definitions(resources).resolve_job_def("submissions_nightly")
instance = DagsterInstance.ephemeral()
ok = job.execute_in_process(partition_key="northwind", instance=instance, raise_on_error=False)
sys.exit(0 if ok.success else 1)
"""


def test_killed_during_the_crm_write_the_next_run_finishes_without_writing_twice(sandbox, tmp_path):
    from submissions_pipeline.crm import CrmStatus, EmbeddedCrm, seed_demo_cases

    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    crm = EmbeddedCrm.from_url(db)
    store = JobStore.from_url(db, migrate_schema=False)
    seeded = seed_demo_cases(crm, oems=["northwind"], per_oem=6)
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps(credentials_document(["northwind"])))
    args = [db, str(tmp_path / "artifacts"), str(tmp_path), json.dumps(sandbox.urls), str(creds)]
    env = {**os.environ, "SUBMISSIONS_HOME": str(tmp_path)}

    killed = subprocess.run(
        [sys.executable, "-c", NIGHTLY_IN_A_PROCESS, *args],
        env={**env, "SUBMISSIONS_FAILPOINTS": "during_crm_write"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    valid = seeded.per_oem["northwind"].valid
    written = [c for c in crm.list_cases(oem="northwind") if c.status is CrmStatus.SUBMITTED]
    assert len(written) == 1  # the CRM got the first outcome, then the process died
    assert {j.state for j in store.list_jobs()} == {S.EVIDENCE_STORED}  # truthful: not synced

    again = subprocess.run(
        [sys.executable, "-c", NIGHTLY_IN_A_PROCESS, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert {j.state for j in store.list_jobs()} == {S.CRM_UPDATED}
    assert len(sandbox.ledger("northwind")) == valid and sandbox.duplicates("northwind") == []
    for case in crm.list_cases(oem="northwind"):
        if case.status is CrmStatus.SUBMITTED:
            writes = [a for a in crm.history(case.case_id) if a.status is CrmStatus.SUBMITTED]
            assert len(writes) == 1 and case.submitted_by_automation  # written exactly once
    store.dispose()
    crm.dispose()
