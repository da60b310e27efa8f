"""Everything the runner uses works on both browsers: the headless shell (the default) and the
full Chromium. Contexts and reused sessions, locator handlers for pop-ups, traces with DOM
snapshots, screenshots, video through the screencast, and file uploads."""

from __future__ import annotations

import io
import json
import time
import zipfile

from PIL import Image, ImageChops
from playwright.sync_api import sync_playwright

import adapters
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.domain.evidence import POST_CONFIRM_SCREENSHOT, PRE_SUBMIT_SCREENSHOT
from submissions_pipeline.domain.retry import RetryPolicy
from submissions_pipeline.runner import BrowserSettings, EvidenceSettings, run_batch
from submissions_pipeline.runner.config import CHROMIUM_ARGS, HEADLESS_SHELL, default_chromium
from submissions_pipeline_tests.conftest import BROWSER_BINARIES
from submissions_pipeline_tests.factories import make_case, quick_config

OEMS = adapters.sandbox_oem_keys()


def trace_events(archive: bytes) -> list[dict]:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        lines = [
            line
            for name in z.namelist()
            if name.endswith(".trace")
            for line in z.read(name).decode().splitlines()
        ]
    return [json.loads(line) for line in lines if line]


def test_the_headless_shell_is_the_default_browser():
    assert default_chromium() == HEADLESS_SHELL
    assert BrowserSettings().executable_path == HEADLESS_SHELL
    # the shell cannot show a window: headed runs get the full browser
    assert BrowserSettings(headless=False).executable_path == BROWSER_BINARIES["full-chromium"]


def test_a_retried_upload_keeps_rich_evidence_on_either_browser(
    browser_binary, runner_deps, sandbox
):
    # kestrel's form uploads a supporting document; pop-ups on every page exercise the
    # locator handlers; two cases of one dealer reuse its logged-in storage state
    runner_deps.store.policy = RetryPolicy(time_scale=0.0005)
    sandbox.configure("kestrel", error_rate=1.0)
    first = runner_deps.store.enqueue(make_case(1, oem="kestrel", dealer_id="D1001")).job_id
    cfg = quick_config(
        oem="kestrel",
        browser=BrowserSettings(executable_path=browser_binary, context_cap=2),
        evidence=EvidenceSettings(video="on"),
    )
    run_batch(cfg, runner_deps)
    assert runner_deps.store.get(first).state is S.RETRY_SCHEDULED
    sandbox.configure("kestrel", error_rate=0.0, popup_rate=1.0)
    second = runner_deps.store.enqueue(make_case(2, oem="kestrel", dealer_id="D1001")).job_id
    time.sleep(0.5)

    report = run_batch(cfg, runner_deps)

    assert sorted(o.state for o in report.outcomes) == [S.EVIDENCE_STORED] * 2
    assert sorted(e.case_id for e in sandbox.ledger("kestrel")) == sorted(
        runner_deps.store.get(j).case_id for j in (first, second)
    )
    job = runner_deps.store.get(first)
    items = {i["name"]: i for i in job.evidence["items"]}
    for name in (PRE_SUBMIT_SCREENSHOT, POST_CONFIRM_SCREENSHOT):
        png = runner_deps.artifacts.get_bytes(items[name]["key"])
        assert Image.open(io.BytesIO(png)).size[0] > 0
    video = runner_deps.artifacts.get_bytes(
        next(i["key"] for n, i in items.items() if ".webm" in n)
    )
    assert video[:4] == b"\x1aE\xdf\xa3"  # a WebM (EBML) file from the screencast and ffmpeg
    trace = runner_deps.artifacts.get_bytes(
        next(i["key"] for n, i in items.items() if "trace" in n)
    )
    events = trace_events(trace)
    # the retry's trace is the rich kind: DOM snapshots of the actions
    assert any(e.get("type") == "frame-snapshot" for e in events)
    assert any(e.get("type") == "before" for e in events)


def screenshots(executable: str, urls: list[str]) -> list[Image.Image]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            shots = []
            for url in urls:
                page.goto(url)
                shots.append(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"))
            return shots
        finally:
            browser.close()


def test_evidence_screenshots_look_the_same_on_both_browsers(sandbox):
    # same fonts and layout: each portal's pages have the same size and differ in almost no pixel
    urls = [f"{sandbox.base_url(oem)}/{page}" for oem in OEMS for page in ("", "nowhere")]
    shell = screenshots(BROWSER_BINARIES["headless-shell"], urls)
    full = screenshots(BROWSER_BINARIES["full-chromium"], urls)
    for a, b in zip(shell, full, strict=True):
        assert a.size == b.size
        diff = ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > 32 else 0)
        changed = sum(diff.histogram()[255:]) / (a.size[0] * a.size[1])
        assert changed < 0.01, f"{changed:.2%} of the pixels differ"
