"""`submissions audit` finds damage already done: a second submit click, a second reference,
and a reference for data that is not the case's; a clean night reports nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from submissions_pipeline.audit import audit
from submissions_pipeline.crm import EmbeddedCrm
from submissions_pipeline.domain import ReasonCode, Step
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.failure import FailureObject
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import case_record, make_case


def click(store: JobStore, job_id: str, clock) -> None:
    """Claim the job (once it is due) and press submit."""
    clock.advance(3600)
    assert [j.job_id for j in store.claim("w", limit=10)] == [job_id]
    store.record_milestone(job_id, "w", Step.SUBMIT_CLICKED)


def lose_the_confirmation(store: JobStore, job_id: str) -> None:
    lost = FailureObject.of(ReasonCode.SUBMIT_OUTCOME_UNKNOWN, "504 after the click")
    store.record_failure(job_id, lost, actor="w", lease_owner="w")


def test_damage_done_is_found_case_by_case(store: JobStore, clock):
    crm = EmbeddedCrm(store.engine, clock=clock)
    for n in (1, 2, 3, 4):
        crm.add_case(case_record(n))

    clean = store.enqueue(make_case(1)).job_id
    click(store, clean, clock)
    store.transition(clean, S.SUBMITTED, actor="w", lease_owner="w", reference="NW-1")

    twice = store.enqueue(make_case(2)).job_id  # submitted again after a lookup missed
    click(store, twice, clock)
    lose_the_confirmation(store, twice)
    click(store, twice, clock)
    store.transition(twice, S.SUBMITTED, actor="w", lease_owner="w", reference="NW-2")

    two_refs = store.enqueue(make_case(3)).job_id  # proven, proof lost, submitted again
    click(store, two_refs, clock)
    store.transition(two_refs, S.SUBMITTED, actor="w", lease_owner="w", reference="NW-3a")
    store.transition(two_refs, S.RETRY_SCHEDULED, actor="w", lease_owner="w")
    click(store, two_refs, clock)
    store.transition(two_refs, S.SUBMITTED, actor="w", lease_owner="w", reference="NW-3b")

    sent = case_record(4)
    sent["payload"]["mileage"] = 999  # not what the CRM holds for case 4
    other_data = store.enqueue(make_case(4, payload=sent["payload"])).job_id
    click(store, other_data, clock)
    store.transition(other_data, S.SUBMITTED, actor="w", lease_owner="w", reference="NW-4")

    report = audit(store, crm)
    found = {(f.case_id, f.kind) for f in report.findings}
    assert found == {
        (make_case(2).case_id, "more_than_one_click"),
        (make_case(3).case_id, "more_than_one_click"),
        (make_case(3).case_id, "more_than_one_reference"),
        (make_case(4).case_id, "wrong_data"),
    }
    assert report.cases == 4


def test_the_audit_command_exits_clean_on_a_clean_store(tmp_path: Path):
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = JobStore.from_url(db)
    crm = EmbeddedCrm(store.engine)
    crm.add_case(case_record(1))
    job_id = store.enqueue(make_case(1)).job_id
    store.claim("w")
    store.record_milestone(job_id, "w", Step.SUBMIT_CLICKED)
    store.transition(job_id, S.SUBMITTED, actor="w", lease_owner="w", reference="NW-1")
    store.dispose()
    env = {**os.environ, "SUBMISSIONS_HOME": str(tmp_path), "SUBMISSIONS_DB_URL": db}
    done = subprocess.run(
        [sys.executable, "-m", "submissions_pipeline.cli", "audit"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 case(s), 1 job(s) examined" in done.stdout and "nothing found" in done.stdout
