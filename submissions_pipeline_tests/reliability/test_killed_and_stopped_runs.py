"""The front door recovers on its own: a run killed with SIGKILL does not block later runs, and a
run told to stop (SIGTERM) stops, giving its jobs back; either way every case ends submitted once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus

from sandbox.accounts import credentials_document
from submissions_pipeline.crm import EmbeddedCrm, seed_demo_cases
from submissions_pipeline.domain import SETTLED_STATES
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import jobs_in_the_browser

OEM = "northwind"


class Night:
    """A database with seeded cases, a Dagster home, and the child that runs one nightly."""

    def __init__(self, tmp_path: Path, sandbox) -> None:
        self.home = tmp_path / "dagster"
        self.db = f"sqlite:///{tmp_path / 'jobs.db'}"
        crm = EmbeddedCrm.from_url(self.db)
        self.seeded = seed_demo_cases(crm, oems=[OEM], per_oem=8)
        crm.dispose()
        creds = tmp_path / "creds.json"
        creds.write_text(json.dumps(credentials_document([OEM])))
        self.args = [OEM, json.dumps(sandbox.urls), str(creds), str(self.home)]
        self.env = {
            **os.environ,
            "SUBMISSIONS_HOME": str(tmp_path),
            "SUBMISSIONS_DB_URL": self.db,
            "SUBMISSIONS_RETRY_TIME_SCALE": "0.002",
            "DAGSTER_HOME": str(self.home),
        }
        self.store = JobStore.from_url(self.db, migrate_schema=False)

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "submissions_pipeline_tests.nightly_child", *self.args],
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def run_to_the_end(self, rounds: int = 6) -> None:
        """Launch runs until every job is settled (retries and lookups come due in between)."""
        for _ in range(rounds):
            done = subprocess.run(
                [sys.executable, "-m", "submissions_pipeline_tests.nightly_child", *self.args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode in (0, 1), done.stderr[-3000:]
            if all(j.state in SETTLED_STATES for j in self.store.list_jobs()):
                return
            time.sleep(1)
        raise AssertionError(f"unsettled: {[j.state for j in self.store.list_jobs()]}")

    def wait_until_a_job_is_in_the_browser(self, proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            if jobs_in_the_browser(self.store):
                return
            time.sleep(0.2)
        raise AssertionError("no job reached the browser")

    def runs(self) -> list:
        with DagsterInstance.from_config(str(self.home)) as instance:
            return [r.dagster_run for r in instance.get_run_records()]


def assert_each_case_submitted_once(night: Night, sandbox) -> None:
    jobs = night.store.list_jobs()
    submitted = [j for j in jobs if j.state is S.CRM_UPDATED]
    assert len(submitted) == night.seeded.per_oem[OEM].valid and all(j.reference for j in submitted)
    ledger = sandbox.ledger(OEM)
    assert sorted(e.case_id for e in ledger) == sorted(j.case_id for j in submitted)
    assert sandbox.duplicates(OEM) == []


def test_a_killed_run_frees_its_slots_and_the_next_run_finishes_its_jobs(tmp_path, sandbox):
    sandbox.configure(OEM, search_latency_s=1.5)
    night = Night(tmp_path, sandbox)
    killed = night.start()
    night.wait_until_a_job_is_in_the_browser(killed)
    os.killpg(killed.pid, signal.SIGKILL)  # the process and its browser, as an OOM kill does
    killed.wait(timeout=30)
    (dead,) = night.runs()
    assert dead.status is DagsterRunStatus.STARTED  # nobody told Dagster

    sandbox.configure(OEM, search_latency_s=0)
    night.run_to_the_end()  # with one browser slot: it would wait forever if the dead run held it
    statuses = {r.run_id: r.status for r in night.runs()}
    assert statuses[dead.run_id] is DagsterRunStatus.FAILURE
    assert_each_case_submitted_once(night, sandbox)
    events = [e for j in night.store.list_jobs() for e in night.store.events(j.job_id)]
    assert any(e.actor == f"launcher:recovered:{dead.run_id}" for e in events)


def test_a_stopped_run_stops_gives_its_jobs_back_and_the_next_run_finishes_them(tmp_path, sandbox):
    sandbox.configure(OEM, search_latency_s=1.5)
    night = Night(tmp_path, sandbox)
    stopped = night.start()
    night.wait_until_a_job_is_in_the_browser(stopped)
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(timeout=60) == 130
    assert not [j for j in night.store.list_jobs() if j.state in LEASED_STATES]
    (run,) = night.runs()
    assert run.status is DagsterRunStatus.FAILURE

    sandbox.configure(OEM, search_latency_s=0)
    night.run_to_the_end()
    assert_each_case_submitted_once(night, sandbox)
