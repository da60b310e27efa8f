"""A portal whose search trails its own records: after an ambiguous submit, a lookup that misses
proves nothing until the OEM's reconciliation policy says so, and never leads to a second
submission. Real Chromium against the sandbox with its `search_lag_s` knob."""

from __future__ import annotations

import time

from submissions_pipeline.domain import ReasonCode, RetryPolicy
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.reconciliation import ReconciliationPolicy
from submissions_pipeline.runner import run_batch
from submissions_pipeline_tests.factories import make_case, quick_config

OEM = "northwind"


def drive_until_settled(runner_deps, job_id: str, limit_s: float = 60.0) -> list:
    """Run batches as the job falls due until it leaves the reconciliation loop."""
    outcomes = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        outcomes += run_batch(quick_config(oem=OEM), runner_deps).outcomes
        if runner_deps.store.get(job_id).state not in (S.NEEDS_RECONCILIATION, S.RETRY_SCHEDULED):
            return outcomes
        time.sleep(0.3)
    raise AssertionError(f"still reconciling after {limit_s} s: {runner_deps.store.get(job_id)}")


def test_a_miss_inside_the_lag_window_is_looked_up_again_and_found_never_resubmitted(
    runner_deps, sandbox
):
    # The OEM says its search may trail by 300 s; scaled by 0.05 that is 15 s. The portal trails
    # by 10 s, so the first lookup (6 s after the click) misses and the next one, spread over the
    # window, finds it.
    runner_deps.store.policy = RetryPolicy(time_scale=0.05)
    sandbox.configure(OEM, drop_after_submit_rate=1.0, search_lag_s=10.0)
    job_id = runner_deps.store.enqueue(make_case(1, oem=OEM)).job_id
    (first,) = run_batch(quick_config(oem=OEM), runner_deps).outcomes
    assert first.reason_code is ReasonCode.SUBMIT_OUTCOME_UNKNOWN
    sandbox.configure(OEM, drop_after_submit_rate=0.0)

    outcomes = drive_until_settled(runner_deps, job_id)

    assert ReasonCode.ABSENCE_UNPROVEN in {o.reason_code for o in outcomes}  # the early miss
    job = runner_deps.store.get(job_id)
    (entry,) = sandbox.ledger(OEM)  # one submission, whatever the lookups saw
    assert job.state is S.EVIDENCE_STORED and job.reference == entry.reference
    assert outcomes[-1].reconciled
    assert job.tries == 1  # lookups are not submit attempts


def test_a_portal_whose_misses_prove_nothing_sends_the_case_to_a_person(runner_deps, sandbox):
    adapter = runner_deps.adapters[OEM]
    adapter.settings = adapter.settings.model_copy(
        update={"reconciliation": ReconciliationPolicy(proof="never")}
    )
    runner_deps.store.policy = RetryPolicy(time_scale=0.01)
    sandbox.configure(OEM, drop_after_submit_rate=1.0, search_lag_s=3600.0)
    job_id = runner_deps.store.enqueue(make_case(1, oem=OEM)).job_id
    run_batch(quick_config(oem=OEM), runner_deps)
    sandbox.configure(OEM, drop_after_submit_rate=0.0)

    outcomes = drive_until_settled(runner_deps, job_id)

    job = runner_deps.store.get(job_id)
    assert job.state is S.NEEDS_REVIEW  # a person decides: re-drive, or record it by hand
    assert outcomes[-1].reason_code is ReasonCode.ABSENCE_UNPROVEN
    assert len(sandbox.ledger(OEM)) == 1 and job.tries == 1
