"""The ops console driven as an operator would, in real Chromium, over real dead letters."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile

import pytest
from playwright.sync_api import expect, sync_playwright

from submissions_pipeline.assets.crm_outcomes import outcome_update
from submissions_pipeline.domain import ReasonCode
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.runner import EvidenceSettings, run_batch
from submissions_pipeline_tests.console.conftest import OPERATOR, PASSWORD
from submissions_pipeline_tests.factories import make_case, quick_config

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def _chromium() -> str:
    return next(p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if os.path.exists(p))


def dead_letters(runner_deps, sandbox, n: int) -> list[str]:
    """`n` northwind jobs dead-lettered by an unknown UI version, with trace and video."""
    from adapters.northwind import NorthwindAdapter

    adapter = runner_deps.adapters["northwind"]
    v1_only = {"v1": adapter.selector_sets["v1"]}
    runner_deps.adapters["northwind"] = NorthwindAdapter(adapter.settings, adapter.folder, v1_only)
    sandbox.configure("northwind", ui_version="v2")
    ids = [runner_deps.store.enqueue(make_case(i, oem="northwind")).job_id for i in range(n)]
    cfg = quick_config(max_jobs=n, evidence=EvidenceSettings(video="on"))
    run_batch(cfg, runner_deps)
    for job_id in ids:
        assert runner_deps.store.get(job_id).state is S.DEAD_LETTERED
    return ids


def test_an_operator_finds_a_failed_job_sees_its_evidence_and_redrives_it(
    runner_deps, sandbox, console
):
    first, *rest = dead_letters(runner_deps, sandbox, 3)
    store = runner_deps.store
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=console.url, accept_downloads=True)
        page = context.new_page()

        # Anonymous: a login page, never evidence.
        page.goto("/jobs")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        anonymous = context.request.get(f"/jobs/{first}/attempts/1/bundle.zip", max_redirects=0)
        assert anonymous.status == 303 and "/login" in anonymous.headers["location"]

        # Sign in (a wrong password first: refused, nothing rendered back).
        page.get_by_label("Name").fill(OPERATOR)
        page.get_by_label("Password").fill("nope")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("Wrong name or password")
        page.get_by_label("Name").fill(OPERATOR)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
        assert PASSWORD not in page.content()

        # Filter to the failed jobs and open the first.
        page.get_by_label("OEM").select_option("northwind")
        page.get_by_label("State").select_option("dead_lettered")
        page.get_by_label("Reason").select_option(ReasonCode.UNKNOWN_UI_VERSION.value)
        page.get_by_role("button", name="Filter").click()
        expect(page.get_by_text("3 jobs")).to_be_visible()
        case_id = store.get(first).case_id
        page.get_by_role("link", name=case_id, exact=True).click()
        expect(page.get_by_role("heading", name=case_id)).to_be_visible()

        # The screenshot loads, the failure object reads.
        shot = page.get_by_role("img", name="failure.png").first
        expect(shot).to_be_visible()
        assert shot.evaluate("img => img.complete && img.naturalWidth > 0")
        failure = page.locator(".failure").first
        expect(failure).to_contain_text(ReasonCode.UNKNOWN_UI_VERSION.value)
        expect(failure).to_contain_text("Last step")
        assert store.get(first).failure.message[:20] in failure.inner_text()

        # The video plays far enough to know its length.
        video = page.locator("video").first
        duration = video.evaluate(
            """v => new Promise(ok => {
                if (v.readyState >= 1) return ok(v.duration);
                v.addEventListener('loadedmetadata', () => ok(v.duration));
            })"""
        )
        assert duration > 0

        # Open trace: Playwright's own viewer lists the attempt's actions.
        with context.expect_page() as opened:
            page.get_by_role("link", name="Open trace").first.click()
        viewer = opened.value
        expect(viewer.locator(".action-title").first).to_be_visible(timeout=20_000)
        assert viewer.locator(".action-title").count() >= 2
        viewer.close()

        # The repro bundle: every file's hash matches bundle.json, the manifest is inside.
        with page.expect_download() as download:
            page.get_by_role("link", name="Repro bundle").first.click()
        data = download.value.path().read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            index = json.loads(z.read("bundle.json"))
            for name, digest in index["sha256"].items():
                assert hashlib.sha256(z.read(name)).hexdigest() == digest
            names = set(z.namelist())
            manifest_name = next(n for n in names if n.endswith("/manifest.json"))
            manifest = json.loads(z.read(manifest_name))
            folder = manifest_name.rsplit("/", 1)[0]
            for item in manifest["items"]:
                if f"{folder}/{item['name']}" in names:
                    member = z.read(f"{folder}/{item['name']}")
                    assert hashlib.sha256(member).hexdigest() == item["sha256"]
            assert "case.json" in names and any(n.startswith("selectors/") for n in names)
            assert any(n.endswith(".zip") for n in names)  # the trace

        # A request without the CSRF token is refused, and so is a path out of the job.
        refused = context.request.post(f"/jobs/{first}/redrive", form={"note": "x"})
        assert refused.status == 403 and store.get(first).state is S.DEAD_LETTERED
        for path in (
            f"/jobs/{first}/evidence/dev/..%2F..%2Fjobs.db",
            f"/jobs/{first}/evidence/..%2Fjobs.db",
            f"/jobs/{first}/evidence/{store.get(rest[0]).failure.artifacts['failure.png']}",
        ):
            assert context.request.get(path).status == 404, path

        # The CRM's link for the job is this page, served by the console from local disk.
        crm_link = outcome_update(store.get(first), runner_deps.artifacts).evidence_url
        assert crm_link == f"{console.url}/jobs/{first}"
        page.goto(crm_link)
        expect(page.get_by_role("img", name="failure.png").first).to_be_visible()

        # Re-drive one: the state changes and the timeline names the operator.
        page.get_by_label("Note").first.fill("adapter v2 selectors shipped")
        page.get_by_role("button", name="Re-drive").click()
        expect(page.locator("h1 .state")).to_have_text("queued")
        expect(page.locator(".timeline li.human").last).to_contain_text(f"operator:{OPERATOR}")
        expect(page.locator(".timeline").last).to_contain_text("adapter v2 selectors shipped")
        assert store.get(first).state is S.QUEUED

        # Bulk re-drive by reason for one OEM.
        reason = ReasonCode.UNKNOWN_UI_VERSION.value
        page.goto(f"/review?oem=northwind&reason={reason}")
        page.get_by_role("button", name="Re-drive every dead letter shown").click()
        expect(page.get_by_role("status")).to_contain_text("re-drove 2 dead letters")
        for job_id in rest:
            assert store.get(job_id).state is S.QUEUED
            assert store.events(job_id)[-1].actor == f"operator:{OPERATOR}"
        browser.close()
