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


def test_run_batch_submits_queued_cases_outside_dagster(sandbox, tmp_path):
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = JobStore.from_url(db)
    job_id = store.enqueue(make_case(1, oem="aurora")).job_id
    env = {
        **os.environ,
        "SUBMISSIONS_HOME": str(tmp_path),
        "SUBMISSIONS_DB_URL": db,
        "SUBMISSIONS_PORTAL_URLS": json.dumps({"aurora": sandbox.base_url("aurora")}),
        "SUBMISSIONS_CREDENTIALS": json.dumps(credentials_document(["aurora"])),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "submissions_pipeline.cli",
            "run-batch",
            "--oem",
            "aurora",
            "--video",
            "off",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    job = store.get(job_id)
    assert job.state is S.EVIDENCE_STORED and job.reference in out.stdout
    assert (tmp_path / "artifacts").is_dir()
    # the password never reaches the console
    assert credentials_document(["aurora"])["aurora"]["D1002"]["password"] not in out.stdout
    store.dispose()
