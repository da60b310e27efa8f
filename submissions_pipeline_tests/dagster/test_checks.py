"""Every asset check, run by Dagster on job-store data arranged for it to pass and to fail."""

import hashlib
from datetime import UTC, datetime, timedelta

from dagster import AssetCheckSeverity, AssetSelection, DagsterInstance
from dagster._core.utils import make_new_run_id

from submissions_pipeline.assets import crm_updates, evidence_bundles
from submissions_pipeline.assets.partitions import worker_id
from submissions_pipeline.checks.queue_health import SOAK_WINDOW
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
from submissions_pipeline.domain import FailureObject, ReasonCode, SubmissionState
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.dagster.conftest import (
    OEM,
    arrange_proven_job,
    check_result,
    metadata_of,
    run_checks,
    run_selection,
)
from submissions_pipeline_tests.factories import make_case

S = SubmissionState
BUNDLE_AND_WRITE_BACK = AssetSelection.assets(evidence_bundles, crm_updates)


# ---------------------------------------------------------------- evidence completeness


def test_complete_evidence_passes_and_the_crm_gets_reference_and_proof_link(
    resources, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm
):
    artifacts = resources["artifacts"].get_store()
    job = arrange_proven_job(store, crm, artifacts, 1)

    result = run_selection(resources, instance, BUNDLE_AND_WRITE_BACK)

    assert result.success
    assert check_result(result, "evidence_completeness").passed
    assert store.get(job.job_id).state is S.CRM_UPDATED
    case = crm.get_case(job.case_id)
    assert case.status is CrmStatus.SUBMITTED and case.submitted_by_automation
    assert case.reference == job.reference and case.evidence_url == artifacts.job_link(job.job_id)
    bundle_key = job.evidence["manifest_key"].replace("manifest.json", "bundle.json")
    assert b'"complete": true' in artifacts.get_bytes(bundle_key)


def test_tampered_evidence_fails_the_blocking_check_and_keeps_the_case_out_of_the_crm(
    resources, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm
):
    artifacts = resources["artifacts"].get_store()
    good = arrange_proven_job(store, crm, artifacts, 1)
    bad = arrange_proven_job(store, crm, artifacts, 2)
    shot = next(i["key"] for i in bad.evidence["items"] if i["name"] == "post_confirm.png")
    artifacts.put_bytes(shot, b"not the screenshot that was hashed", "image/png")

    result = run_selection(resources, instance, BUNDLE_AND_WRITE_BACK)

    evaluation = check_result(result, "evidence_completeness")
    assert not evaluation.passed and evaluation.severity is AssetCheckSeverity.ERROR
    assert evaluation.metadata["incomplete"].value == 1
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert materialized == {"evidence_bundles"}  # crm_updates never ran
    assert crm.get_case(good.case_id).status is CrmStatus.NEW
    assert crm.get_case(bad.case_id).status is CrmStatus.NEW
    bundle = artifacts.get_bytes(
        bad.evidence["manifest_key"].replace("manifest.json", "bundle.json")
    )
    assert b"post_confirm.png SHA-256 does not match" in bundle
    # The incomplete job never reaches the CRM as submitted: the portal holds it, so it goes to
    # reconciliation, to be re-proven through the lookup page, never submitted again.
    assert store.get(bad.job_id).state is S.NEEDS_RECONCILIATION
    assert store.get(good.job_id).state is S.EVIDENCE_STORED


# ---------------------------------------------------------------- release gate


def _clean_run(resources, instance, store, crm, artifacts, n: int) -> str:
    run_id = make_new_run_id()
    arrange_proven_job(store, crm, artifacts, n, run_id=run_id)
    result = run_selection(resources, instance, BUNDLE_AND_WRITE_BACK, run_id=run_id)
    assert result.success
    assert metadata_of(result, "crm_updates")["release_verdict"] == "clean"
    return run_id


def test_release_gate_passes_after_five_clean_runs_and_resets_on_a_failure(
    resources, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm
):
    artifacts = resources["artifacts"].get_store()
    counts = []
    for n in range(1, 6):
        _clean_run(resources, instance, store, crm, artifacts, n)
        gate = run_checks(resources, instance, "crm_updates")
        counts.append(check_result(gate, "release_gate").metadata["consecutive_clean_runs"].value)
    assert counts == [1, 2, 3, 4, 5]
    assert check_result(gate, "release_gate").passed

    # A run whose worker hit a site timeout: the job is retried later, the run is not clean.
    run_id = make_new_run_id()
    crm.add_case({"case_id": "CASE-00099", "oem": OEM})
    job_id = store.enqueue(make_case(99)).job_id
    wid = worker_id(run_id, OEM, 0)
    store.claim(wid, oem=OEM, run_id=run_id)
    store.record_failure(
        job_id, FailureObject.of(ReasonCode.SITE_TIMEOUT, "slow"), actor=wid, lease_owner=wid
    )
    failed = run_selection(resources, instance, BUNDLE_AND_WRITE_BACK, run_id=run_id)
    assert metadata_of(failed, "crm_updates")["release_verdict"] == "failed"
    evaluation = check_result(failed, "release_gate")
    assert not evaluation.passed and evaluation.severity is AssetCheckSeverity.ERROR
    assert evaluation.description.startswith("failed")
    assert evaluation.metadata["consecutive_clean_runs"].value == 0
    assert evaluation.metadata["last_reset_run"].value == run_id


def test_a_first_ever_clean_run_shows_the_gate_and_soak_not_yet_proven_not_failed(
    resources, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm
):
    _clean_run(resources, instance, store, crm, resources["artifacts"].get_store(), 1)
    gate = check_result(run_checks(resources, instance, "crm_updates"), "release_gate")
    assert not gate.passed and gate.severity is AssetCheckSeverity.WARN
    assert gate.description.startswith("not yet proven: 1 of 5")
    soak = check_result(run_checks(resources, instance, "submission_runs"), "soak")
    assert not soak.passed and soak.severity is AssetCheckSeverity.WARN
    assert soak.description.startswith("not yet proven: 1 of 1,000")


def test_a_run_that_fails_before_the_crm_update_resets_the_gate(
    resources, instance: DagsterInstance, store: JobStore, crm: EmbeddedCrm
):
    artifacts = resources["artifacts"].get_store()
    for n in range(1, 3):
        _clean_run(resources, instance, store, crm, artifacts, n)
    bad = arrange_proven_job(store, crm, artifacts, 3)
    shot = next(i["key"] for i in bad.evidence["items"] if i["name"] == "pre_submit.png")
    artifacts.put_bytes(shot, b"tampered", "image/png")
    stopped = run_selection(resources, instance, BUNDLE_AND_WRITE_BACK)
    assert not stopped.success  # the blocking evidence check failed the run

    gate = run_checks(resources, instance, "crm_updates")
    evaluation = check_result(gate, "release_gate")
    assert not evaluation.passed
    assert evaluation.metadata["consecutive_clean_runs"].value == 0
    assert evaluation.metadata["last_reset_run"].value == stopped.run_id


# ---------------------------------------------------------------- soak and error budget


def _finish(store: JobStore, n: int, *, ok: bool, seconds: float = 30.0, start: int = 0) -> None:
    """`n` jobs claimed and finished: crm_updated, or dead-lettered as a site flake."""
    for i in range(start, start + n):
        store.enqueue(make_case(i, case_id=f"SOAK-{i:05d}"))
    for job in store.claim("soak-worker", oem=OEM, limit=n, lease_s=3600):
        if ok:
            store.transition(
                job.job_id, S.SUBMITTED, actor="w", lease_owner="soak-worker", reference="R-1"
            )
            store.transition(
                job.job_id,
                S.EVIDENCE_STORED,
                actor="w",
                lease_owner="soak-worker",
                duration_s=seconds,
            )
            store.transition(job.job_id, S.CRM_UPDATED, actor="dagster")
        else:
            store.dead_letter(
                job.job_id,
                FailureObject.of(ReasonCode.SITE_TIMEOUT, "portal down"),
                actor="soak-worker",
            )


def test_soak_with_fewer_than_1000_jobs_is_a_warning_never_a_silent_pass(
    resources, instance: DagsterInstance, store: JobStore
):
    _finish(store, 20, ok=True)
    evaluation = check_result(run_checks(resources, instance, "submission_runs"), "soak")
    assert not evaluation.passed and evaluation.severity is AssetCheckSeverity.WARN
    assert evaluation.metadata["jobs"].value == 20
    assert "not yet proven" in evaluation.description


def test_soak_passes_over_1000_clean_jobs_and_fails_when_the_fail_rate_reaches_3_percent(
    resources, instance: DagsterInstance, store: JobStore
):
    _finish(store, SOAK_WINDOW, ok=True, seconds=40.0)
    passed = run_checks(resources, instance, "submission_runs")
    assert check_result(passed, "soak").passed
    assert check_result(passed, "soak").metadata["p95_job_s"].value == 40.0
    assert check_result(passed, "error_budget").passed

    _finish(store, 31, ok=False, start=SOAK_WINDOW)  # 31 of the last 1,000 = 3.1 %
    failed = check_result(run_checks(resources, instance, "submission_runs"), "soak")
    assert not failed.passed and failed.severity is AssetCheckSeverity.ERROR
    assert failed.metadata["jobs"].value == SOAK_WINDOW
    assert failed.metadata["failed"].value == 31


def test_error_budget_counts_failed_attempts_even_when_a_retry_fixed_them(
    resources, instance: DagsterInstance, store: JobStore
):
    _finish(store, 40, ok=True)
    ok = check_result(run_checks(resources, instance, "submission_runs"), "error_budget")
    assert ok.passed and ok.metadata["attempts"].value == 40

    # Two jobs time out once, then succeed on their retry: 2 failed of 44 attempts = 4.5 %.
    for i in (100, 101):
        job_id = store.enqueue(make_case(i, case_id=f"RETRY-{i}")).job_id
        store.claim("w", oem=OEM)
        store.record_failure(
            job_id, FailureObject.of(ReasonCode.SITE_TIMEOUT, "slow"), actor="w", lease_owner="w"
        )
        later = datetime.now(UTC) + timedelta(hours=1)
        store.claim("w", oem=OEM, now=later)
        store.transition(job_id, S.SUBMITTED, actor="w", lease_owner="w", reference="R")
        store.transition(job_id, S.EVIDENCE_STORED, actor="w", lease_owner="w", duration_s=5.0)
        store.transition(job_id, S.CRM_UPDATED, actor="dagster")
    over = check_result(run_checks(resources, instance, "submission_runs"), "error_budget")
    assert not over.passed
    assert (over.metadata["failed_attempts"].value, over.metadata["attempts"].value) == (2, 44)


# ---------------------------------------------------------------- queue age and orphans


def test_queue_age_fails_when_the_oldest_due_job_waited_two_schedule_intervals(
    resources, instance: DagsterInstance, store: JobStore
):
    store.enqueue(make_case(1), now=datetime.now(UTC) - timedelta(hours=2))
    fresh = check_result(run_checks(resources, instance, "submission_runs"), "queue_age")
    assert fresh.passed

    store.enqueue(make_case(2), now=datetime.now(UTC) - timedelta(hours=49))
    stale = check_result(run_checks(resources, instance, "submission_runs"), "queue_age")
    assert not stale.passed
    assert stale.metadata["limit_s"].value == 2 * 24 * 3600  # northwind runs nightly


def test_zero_orphans_fails_for_an_unreaped_expired_lease_and_a_dead_runs_lease(
    resources, instance: DagsterInstance, store: JobStore
):
    clean = run_checks(resources, instance, "submission_runs")
    assert check_result(clean, "zero_orphaned_jobs").passed

    long_ago = datetime.now(UTC) - timedelta(hours=1)
    store.enqueue(make_case(1), now=long_ago)
    store.claim("vanished-worker", oem=OEM, lease_s=60, now=long_ago)  # expired 59 min ago
    store.enqueue(make_case(2))
    store.claim(worker_id(clean.run_id, OEM, 0), oem=OEM, run_id=clean.run_id)  # run is over

    result = run_checks(resources, instance, "submission_runs")
    evaluation = check_result(result, "zero_orphaned_jobs")
    assert not evaluation.passed and evaluation.metadata["orphans"].value == 2
    table = evaluation.metadata["orphaned_jobs"].value
    assert "lease expired, not reaped" in table and f"leased by run {clean.run_id}" in table


def test_evidence_hashes_are_recomputed_from_the_stored_bytes(
    resources, store: JobStore, crm: EmbeddedCrm
):
    """The bundle's verification is against the artifact store, not the manifest's word."""
    from submissions_pipeline.assets.evidence_bundles import verify_evidence

    artifacts = resources["artifacts"].get_store()
    job = arrange_proven_job(store, crm, artifacts, 1)
    bundle = verify_evidence(job, artifacts, "test")
    assert bundle.complete
    for item in bundle.items:
        assert hashlib.sha256(artifacts.get_bytes(item.key)).hexdigest() == item.sha256
