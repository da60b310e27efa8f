"""The `submissions` command works end to end from a shell, configured by environment only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sandbox.accounts import credentials_document
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import make_case


def run_batch_cli(sandbox, tmp_path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SUBMISSIONS_HOME": str(tmp_path),
        "SUBMISSIONS_DB_URL": db,
        "SUBMISSIONS_PORTAL_URLS": json.dumps({"aurora": sandbox.base_url("aurora")}),
        "SUBMISSIONS_CREDENTIALS": json.dumps(credentials_document(["aurora"])),
    }
    cmd = [sys.executable, "-m", "submissions_pipeline.cli", "run-batch", "--oem", "aurora"]
    return subprocess.run(
        [*cmd, "--video", "off", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_run_batch_submits_queued_cases_outside_dagster(sandbox, tmp_path):
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = JobStore.from_url(db)
    job_id = store.enqueue(make_case(1, oem="aurora")).job_id
    out = run_batch_cli(sandbox, tmp_path, db)
    assert out.returncode == 0, out.stderr
    job = store.get(job_id)
    assert job.state is S.EVIDENCE_STORED and job.reference in out.stdout
    assert (tmp_path / "artifacts").is_dir()
    # the password never reaches the console
    assert credentials_document(["aurora"])["aurora"]["D1002"]["password"] not in out.stdout
    store.dispose()


def test_run_batch_retry_time_scale_brings_the_retry_of_a_flake_within_seconds(sandbox, tmp_path):
    sandbox.configure("aurora", error_rate=1.0)
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = JobStore.from_url(db)
    job_id = store.enqueue(make_case(1, oem="aurora")).job_id

    out = run_batch_cli(sandbox, tmp_path, db, "--max-jobs", "1", "--retry-time-scale", "0.001")

    assert out.returncode == 0, out.stderr
    job = store.get(job_id)
    assert job.state is S.RETRY_SCHEDULED and job.next_attempt_at is not None
    # Unscaled, the first retry waits 4-12 minutes; scaled by 0.001, under a second.
    assert (job.next_attempt_at - job.updated_at).total_seconds() < 1.0
    store.dispose()
