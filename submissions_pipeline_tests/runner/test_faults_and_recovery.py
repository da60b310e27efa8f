"""Each portal fault ends in the right reason code and a truthful state; no double submission."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import time
import zipfile
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from adapters.selectors import load_selector_sets
from submissions_pipeline.domain import ReasonCode, RetryPolicy
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.clock import utcnow
from submissions_pipeline.domain.evidence import LOOKUP_SCREENSHOT
from submissions_pipeline.runner import (
    BrowserSettings,
    EvidenceSettings,
    StepBudgets,
    run_batch,
    run_batch_async,
)
from submissions_pipeline_tests.factories import case_record, make_case, quick_config


def only_outcome(report):
    (outcome,) = report.outcomes
    return outcome


@pytest.mark.parametrize("oem", ["northwind", "kestrel"])
def test_http_503_is_a_site_flake_scheduled_for_retry(oem, runner_deps, sandbox):
    sandbox.configure(oem, error_rate=1.0)
    job_id = runner_deps.store.enqueue(make_case(1, oem=oem)).job_id
    out = only_outcome(run_batch(quick_config(oem=oem), runner_deps))
    job = runner_deps.store.get(job_id)
    assert out.reason_code is ReasonCode.SITE_HTTP_5XX and job.state is S.RETRY_SCHEDULED
    assert job.failure.screenshot_url and job.failure.last_step == "login"
    assert "failure.json" in job.failure.artifacts
    lo, hi = runner_deps.store.policy.delay_bounds_s(1)
    assert job.updated_at + timedelta(seconds=lo) <= job.next_attempt_at
    assert job.next_attempt_at <= job.updated_at + timedelta(seconds=hi)
    assert sandbox.ledger(oem) == []


def test_slow_search_over_its_budget_fails_fast_as_site_flake(runner_deps, sandbox):
    sandbox.configure("northwind", search_latency_s=3.0)
    runner_deps.store.enqueue(make_case(1, oem="northwind"))
    cfg = quick_config(budgets=StepBudgets(per_step_s={"search": 1.0}))
    out = only_outcome(run_batch(cfg, runner_deps))
    assert out.reason_code is ReasonCode.STEP_BUDGET_EXCEEDED
    assert out.state is S.RETRY_SCHEDULED and out.step_seconds["search"] < 2.5


def test_page_latency_beyond_action_timeout_is_a_site_timeout(runner_deps, sandbox):
    sandbox.configure("kestrel", latency_ms=1500)
    runner_deps.store.enqueue(make_case(1, oem="kestrel"))
    out = only_outcome(
        run_batch(quick_config(budgets=StepBudgets(action_timeout_ms=800)), runner_deps)
    )
    assert out.reason_code is ReasonCode.SITE_TIMEOUT and out.state is S.RETRY_SCHEDULED


def test_rejected_login_halts_that_oems_batch(runner_deps, sandbox):
    sandbox.configure("aurora", reject_login=True)
    for n in range(3):
        runner_deps.store.enqueue(make_case(n, oem="aurora"))
    report = run_batch(
        quick_config(oem="aurora", browser=BrowserSettings(context_cap=1)), runner_deps
    )
    (out,) = report.outcomes  # the batch stopped after the first rejection
    assert out.reason_code is ReasonCode.LOGIN_REJECTED and out.halt_oem and out.alert
    assert report.halted_oems == ["aurora"]
    states = sorted(j.state for j in runner_deps.store.list_jobs())
    assert states == [S.QUEUED, S.QUEUED, S.RETRY_SCHEDULED]


def test_portal_validation_goes_back_to_the_crm_with_field_messages(runner_deps, sandbox):
    record = case_record(1, oem="northwind")
    record["payload"]["repair_date"] = "2099-01-01"  # the portal refuses future repairs
    from submissions_pipeline.domain import Case

    job_id = runner_deps.store.enqueue(Case.model_validate(record)).job_id
    out = only_outcome(run_batch(quick_config(), runner_deps))
    job = runner_deps.store.get(job_id)
    assert out.reason_code is ReasonCode.PORTAL_VALIDATION and job.state is S.FAILED_TERMINAL
    assert "payload.repair_date" in job.failure.field_errors
    assert sandbox.ledger("northwind") == []


def test_unknown_vehicle_is_invalid_data(runner_deps, sandbox):
    job_id = runner_deps.store.enqueue(make_case(1, vin="1HGCM82633A000000")).job_id
    run_batch(quick_config(), runner_deps)
    job = runner_deps.store.get(job_id)
    assert job.state is S.FAILED_TERMINAL and "vin" in job.failure.field_errors


def test_unknown_ui_version_is_an_adapter_bug_never_a_silent_success(runner_deps, sandbox):
    from adapters.northwind import NorthwindAdapter

    adapter = runner_deps.adapters["northwind"]
    v1_only = {"v1": adapter.selector_sets["v1"]}
    runner_deps.adapters["northwind"] = NorthwindAdapter(adapter.settings, adapter.folder, v1_only)
    sandbox.configure("northwind", ui_version="v2")
    job_id = runner_deps.store.enqueue(make_case(1)).job_id
    out = only_outcome(run_batch(quick_config(), runner_deps))
    assert out.reason_code is ReasonCode.UNKNOWN_UI_VERSION and out.alert
    assert runner_deps.store.get(job_id).state is S.DEAD_LETTERED


def test_a_renamed_selector_is_an_adapter_bug_with_the_dom_kept(runner_deps, sandbox, tmp_path):
    from adapters.northwind import NorthwindAdapter

    adapter = runner_deps.adapters["northwind"]
    sets = load_selector_sets(adapter.folder / "selectors")
    broken = sets["v1"].model_copy(deep=True)
    broken.steps[0].fields["mileage"].label = "Odometer (furlongs)"
    runner_deps.adapters["northwind"] = NorthwindAdapter(
        adapter.settings, adapter.folder, {"v1": broken}
    )
    job_id = runner_deps.store.enqueue(make_case(1)).job_id
    out = only_outcome(run_batch(quick_config(), runner_deps))
    job = runner_deps.store.get(job_id)
    assert out.reason_code is ReasonCode.SELECTOR_NOT_FOUND and job.state is S.DEAD_LETTERED
    dom = runner_deps.artifacts.get_bytes(job.failure.artifacts["dom.html"]).decode()
    assert "Mileage" in dom and job.failure.last_step == "fill"


@pytest.mark.parametrize("oem", ["northwind", "aurora", "kestrel"])
def test_dropped_confirmation_is_reconciled_without_a_second_submission(oem, runner_deps, sandbox):
    runner_deps.store.policy = RetryPolicy(time_scale=0.01)  # reconcile 1.2 s later, not 2 min
    sandbox.configure(oem, drop_after_submit_rate=1.0)
    job_id = runner_deps.store.enqueue(make_case(1, oem=oem)).job_id
    first = only_outcome(run_batch(quick_config(), runner_deps))
    assert first.reason_code is ReasonCode.SUBMIT_OUTCOME_UNKNOWN
    job = runner_deps.store.get(job_id)
    assert job.state is S.NEEDS_RECONCILIATION and job.next_attempt_at > job.updated_at
    assert len(sandbox.ledger(oem)) == 1

    time.sleep(1.3)
    second = only_outcome(run_batch(quick_config(), runner_deps))
    job = runner_deps.store.get(job_id)
    (entry,) = sandbox.ledger(oem)  # still exactly one submission
    assert second.reconciled and job.state is S.EVIDENCE_STORED
    assert job.reference == entry.reference and job.attempt == 2
    assert LOOKUP_SCREENSHOT in {i["name"] for i in job.evidence["items"]}
    assert sandbox.duplicates(oem) == []


def test_a_job_retried_on_a_later_day_keeps_every_attempts_evidence_under_one_prefix(
    runner_deps, sandbox
):
    store, artifacts = runner_deps.store, runner_deps.artifacts
    store.policy = RetryPolicy(time_scale=0.01)
    enqueued = datetime.now(UTC) - timedelta(days=2)
    store.clock = lambda: enqueued
    job_id = store.enqueue(make_case(1)).job_id
    store.clock = utcnow
    sandbox.configure("northwind", drop_after_submit_rate=1.0)
    assert only_outcome(run_batch(quick_config(), runner_deps)).reason_code is not None
    sandbox.configure("northwind", drop_after_submit_rate=0.0)
    time.sleep(1.3)
    assert only_outcome(run_batch(quick_config(), runner_deps)).reconciled

    job = store.get(job_id)
    prefix = artifacts.job_prefix("northwind", job_id, when=enqueued.date())
    keys = artifacts.list(prefix)
    assert any("/attempt-1/" in k for k in keys) and any("/attempt-2/" in k for k in keys)
    assert job.evidence["manifest_key"] in keys
    assert {i["key"] for i in job.evidence["items"]} <= set(keys)
    today = artifacts.job_prefix("northwind", job_id, when=datetime.now(UTC).date())
    assert artifacts.list(today) == []


def test_failures_keep_their_video(runner_deps, sandbox):
    sandbox.configure("northwind", error_rate=1.0)
    job_id = runner_deps.store.enqueue(make_case(1)).job_id
    run_batch(quick_config(evidence=EvidenceSettings(video="retain-on-failure")), runner_deps)
    key = runner_deps.store.get(job_id).failure.artifacts["video.webm"]
    assert runner_deps.artifacts.get_bytes(key)[:4] == b"\x1aE\xdf\xa3"  # WebM/EBML magic


def test_browser_killed_mid_batch_leaves_every_job_truthful(runner_deps, sandbox):
    sandbox.configure("northwind", search_latency_s=0.4)
    for n in range(8):
        runner_deps.store.enqueue(make_case(n))
    cfg = quick_config(browser=BrowserSettings(context_cap=2, prewarm=False))

    async def run_and_kill():
        from submissions_pipeline.runner import browser as browser_mod

        launched: list = []
        original = browser_mod.BrowserWorker._launch

        async def spy(self):
            await original(self)
            launched.append(self)

        browser_mod.BrowserWorker._launch = spy
        try:
            task = asyncio.ensure_future(run_batch_async(cfg, runner_deps))
            while not sandbox.ledger("northwind"):
                await asyncio.sleep(0.05)
            pids = await launched[0].process_ids()
            os.kill(pids["browser"][0], signal.SIGKILL)
            return await task
        finally:
            browser_mod.BrowserWorker._launch = original

    report = asyncio.run(run_and_kill())
    assert report.browser_crashes >= 1 and report.browser_launches >= 2
    jobs = runner_deps.store.list_jobs()
    assert not [j for j in jobs if j.state in (S.RUNNING, S.SUBMITTED)]
    ledger = {e.case_id for e in sandbox.ledger("northwind")}
    for job in jobs:
        if job.state is S.EVIDENCE_STORED:
            assert job.case_id in ledger
        elif job.case_id in ledger:  # submitted but not proven: must be reconciled, not retried
            assert job.state is S.NEEDS_RECONCILIATION or job.submit_attempted
        else:
            assert job.state in (S.RETRY_SCHEDULED, S.QUEUED, S.NEEDS_RECONCILIATION)
    assert sandbox.duplicates("northwind") == []
    assert any(
        j.reason_code is ReasonCode.BROWSER_CRASHED
        or j.reason_code is ReasonCode.SUBMIT_OUTCOME_UNKNOWN
        for j in jobs
    )


def test_no_secret_reaches_any_trace_log_or_artifact(runner_deps, sandbox, tmp_path):
    for oem in ("northwind", "aurora", "kestrel"):
        runner_deps.store.enqueue(make_case(1, oem=oem))
    sandbox.configure("kestrel", error_rate=1.0)  # a failure too: failure.json, video, dom
    cfg = quick_config(evidence=EvidenceSettings(video="on"))
    run_batch(cfg, runner_deps)
    secrets = runner_deps.credentials.all_secrets()
    aurora_secret = runner_deps.credentials.get("aurora", "D1002").totp_secret
    totp = pyotp.TOTP(aurora_secret.get_secret_value())
    now = time.time()
    codes = {totp.at(now + d) for d in range(-120, 121, 30)}
    scanned = 0
    root = runner_deps.artifacts.root
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        blobs = [path.read_bytes()]
        if path.suffix == ".zip":
            with zipfile.ZipFile(io.BytesIO(blobs[0])) as z:
                blobs = [z.read(n) for n in z.namelist()]
        for blob in blobs:
            scanned += 1
            for s in secrets:
                assert s.encode() not in blob, f"secret found in {path}"
            if path.suffix == ".zip":
                for code in codes:
                    assert f'"{code}"'.encode() not in blob, f"TOTP code in {path}"
    assert scanned > 10
    for job in runner_deps.store.list_jobs():
        text = job.model_dump_json()
        assert not any(s in text for s in secrets)


def test_a_page_that_is_not_the_portal_is_a_site_flake_not_an_adapter_bug(runner_deps, sandbox):
    sandbox.configure("aurora", garbage_rate=1.0)
    job_id = runner_deps.store.enqueue(make_case(1, oem="aurora")).job_id
    out = only_outcome(run_batch(quick_config(), runner_deps))
    assert out.reason_code is ReasonCode.SITE_PAGE_LOST
    assert runner_deps.store.get(job_id).state is S.RETRY_SCHEDULED
    assert sandbox.ledger("aurora") == []


def test_a_login_that_lands_on_a_page_that_is_not_the_portal_is_a_site_flake(runner_deps, sandbox):
    # The sign-in was answered by a CDN's "checking your browser" page: the signed-in marker is
    # missing because the site misbehaved, not because the adapter broke.
    sandbox.configure("aurora", garbage_paths=["POST /auth/signin"])
    job_id = runner_deps.store.enqueue(make_case(1, oem="aurora")).job_id
    out = only_outcome(run_batch(quick_config(), runner_deps))
    assert out.reason_code is ReasonCode.SITE_PAGE_LOST and out.last_step == "login", out
    assert runner_deps.store.get(job_id).state is S.RETRY_SCHEDULED
    assert sandbox.ledger("aurora") == []


def test_database_connections_dropped_mid_batch_lose_nothing(runner_deps, sandbox, pg_url):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from submissions_pipeline.store import JobStore

    runner_deps.store = JobStore.from_url(pg_url)
    for n in range(6):
        runner_deps.store.enqueue(make_case(n))
    db = make_url(pg_url).database
    killer = create_engine(
        make_url(pg_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )

    async def run_and_cut() -> tuple:
        task = asyncio.ensure_future(run_batch_async(quick_config(), runner_deps))
        terminated, cuts = 0, 0
        while not task.done() and cuts < 3:
            if len(sandbox.ledger("northwind")) > cuts:  # cut after each of the first submits
                cuts += 1
                with killer.connect() as conn:
                    terminated += conn.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = :db AND pid <> pg_backend_pid()"
                        ),
                        {"db": db},
                    ).scalar()
            await asyncio.sleep(0.02)
        return await task, terminated

    report, terminated = asyncio.run(run_and_cut())
    killer.dispose()
    assert terminated >= 2  # the store's connections really were cut under the workers
    jobs = runner_deps.store.list_jobs()
    assert len(jobs) == 6 and len(report.outcomes) >= 6
    assert {j.state for j in jobs} == {S.EVIDENCE_STORED}
    assert sandbox.duplicates("northwind") == [] and len(sandbox.ledger("northwind")) == 6
    runner_deps.store.dispose()


def test_by_default_video_is_recorded_on_retries_not_on_every_first_attempt(runner_deps, sandbox):
    runner_deps.store.policy = RetryPolicy(time_scale=0.0005)
    sandbox.configure("northwind", error_rate=1.0)
    job_id = runner_deps.store.enqueue(make_case(1)).job_id
    cfg = quick_config(evidence=EvidenceSettings(video_sample_rate=0.0))
    run_batch(cfg, runner_deps)
    assert "video.webm" not in runner_deps.store.get(job_id).failure.artifacts
    time.sleep(0.5)
    run_batch(cfg, runner_deps)  # the retry records, and keeps its failure's video
    job = runner_deps.store.get(job_id)
    assert job.attempt == 2 and "video.webm" in job.failure.artifacts
