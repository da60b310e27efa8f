"""Each adapter drives its sandbox portal with real Chromium: clean submissions, v2, evidence."""

from __future__ import annotations

import json

import pytest

import adapters
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.evidence import POST_CONFIRM_SCREENSHOT, PRE_SUBMIT_SCREENSHOT
from submissions_pipeline.runner import run_batch
from submissions_pipeline_tests.factories import make_case, quick_config

OEMS = adapters.sandbox_oem_keys()


@pytest.mark.parametrize("oem", OEMS)
@pytest.mark.parametrize("ui_version", ["v1", "v2"])
def test_clean_submission_leaves_reference_and_both_screenshots(
    oem, ui_version, runner_deps, sandbox
):
    sandbox.configure(oem, ui_version=ui_version)
    job_id = runner_deps.store.enqueue(make_case(1, oem=oem)).job_id

    report = run_batch(quick_config(oem=oem), runner_deps)

    job = runner_deps.store.get(job_id)
    (entry,) = sandbox.ledger(oem)
    assert job.state is S.EVIDENCE_STORED and job.submitted_by_automation
    assert job.reference == entry.reference and entry.case_id == job.case_id
    selectors = runner_deps.adapters[oem].selector_sets[ui_version]
    assert selectors.parse_reference(job.reference) == job.reference
    manifest = job.evidence
    names = {i["name"] for i in manifest["items"]}
    assert {PRE_SUBMIT_SCREENSHOT, POST_CONFIRM_SCREENSHOT, "steps.json"} <= names
    for item in manifest["items"]:
        data = runner_deps.artifacts.get_bytes(item["key"])
        assert len(data) == item["size"] > 0
        assert f"/{oem}/" in item["key"] and job_id in item["key"] and "/attempt-1/" in item["key"]
    png = runner_deps.artifacts.get_bytes(
        next(i["key"] for i in manifest["items"] if i["name"] == POST_CONFIRM_SCREENSHOT)
    )
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    stored_manifest = json.loads(runner_deps.artifacts.get_bytes(manifest["manifest_key"]))
    assert stored_manifest["reference"] == job.reference
    assert [o.state for o in report.outcomes] == [S.EVIDENCE_STORED]
    timings = {r["step"] for r in runner_deps.store.step_timings(job_id)}
    assert {"login", "search", "fill", "submit", "confirm"} <= timings


def test_popups_everywhere_are_dismissed(runner_deps, sandbox):
    for oem in OEMS:
        sandbox.configure(oem, popup_rate=1.0)
        runner_deps.store.enqueue(make_case(OEMS.index(oem), oem=oem))
    report = run_batch(quick_config(), runner_deps)
    assert sorted(o.state for o in report.outcomes) == [S.EVIDENCE_STORED] * 3
    assert all(len(sandbox.ledger(oem)) == 1 for oem in OEMS)


def test_sessions_are_reused_and_never_bleed_between_dealers(runner_deps, sandbox):
    # two dealers, several cases each, on one worker with three contexts
    for n in range(6):
        runner_deps.store.enqueue(make_case(n, oem="northwind", dealer_id=f"D100{1 + n % 2}"))
    report = run_batch(quick_config(oem="northwind"), runner_deps)
    assert [o.state for o in report.outcomes] == [S.EVIDENCE_STORED] * 6
    by_case = {e.case_id: e.dealer_id for e in sandbox.ledger("northwind")}
    for job in runner_deps.store.list_jobs():
        assert by_case[job.case_id] == job.dealer_id


def test_dry_run_claims_nothing(runner_deps, sandbox):
    runner_deps.store.enqueue(make_case(1))
    report = run_batch(quick_config(dry_run=True), runner_deps)
    assert report.due_at_start == 1 and report.outcomes == []
    assert runner_deps.store.list_jobs()[0].state is S.QUEUED


def test_browser_is_relaunched_after_its_job_budget(runner_deps, sandbox):
    from submissions_pipeline.runner import BrowserSettings

    for n in range(5):
        runner_deps.store.enqueue(make_case(n, oem="northwind"))
    cfg = quick_config(browser=BrowserSettings(context_cap=2, recycle_browser_after=2))
    report = run_batch(cfg, runner_deps)
    assert [o.state for o in report.outcomes] == [S.EVIDENCE_STORED] * 5
    assert report.browser_launches >= 3 and report.browser_crashes == 0


def test_redaction_sensitive_cases_go_first_when_asked(runner_deps, sandbox):
    from submissions_pipeline.runner import BrowserSettings

    plain = runner_deps.store.enqueue(make_case(1, priority=5)).job_id
    sensitive = runner_deps.store.enqueue(make_case(2, redaction_sensitive=True)).job_id
    cfg = quick_config(prefer_redaction_sensitive=True, browser=BrowserSettings(context_cap=1))
    report = run_batch(cfg, runner_deps)
    assert [o.job_id for o in report.outcomes] == [sensitive, plain]
