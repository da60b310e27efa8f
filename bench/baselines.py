"""Raw-Playwright baselines: the floor the project is measured against, written without its code.

* ``bare``: one browser, a fresh context per job: log in, search the VIN, fill both form
  steps, tick the attestation, submit, read the reference.
* ``evidence``: bare plus exactly the evidence the runner keeps at its default
  ``EvidenceSettings``: a full-page screenshot before the submit and after the confirmation; a
  trace without DOM snapshots or screenshots, paused while credentials are typed; a video
  (800x600) recorded and kept for one job in 20 (the runner's default `on-retry` mode records
  retries, which a clean baseline run has none of, and a 5 % sample of first attempts).
* ``process_per_job``: bare, but every job launches (and closes) its own browser.

Every baseline job logs in: holding no session between jobs is the plain way, and the runner's
session reuse is what must pay for its evidence and bookkeeping. Locators are the portal's
user-facing labels and button names (northwind, UI v1) with Playwright's auto-waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright, expect

from bench.measures import JobTiming, VariantRun
from bench.pss import client_cpu_seconds

#: Northwind Dealer Connect (UI v1): the reference on the confirmation page.
REFERENCE = re.compile(r"NW-\d{4}-\d{6}")
ATTESTATION = "I certify that this claim is accurate and complete"


@dataclass
class BaselineSettings:
    """How a baseline runs: the same browser binary and flags as the runner, `cap` jobs at once."""

    executable_path: str
    args: list[str]
    cap: int = 1
    evidence: bool = False
    browser_per_job: bool = False
    scratch: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    viewport: tuple[int, int] = (1280, 900)
    video_size: tuple[int, int] = (800, 600)
    keep_video_every: int = 20
    #: Only for experiments that take the evidence apart; the evidence-matched baseline records.
    record_video: bool = True
    timeout_ms: float = 30_000
    #: Reads CPU seconds at each step's start and end (CPU per step; meaningful at cap 1).
    step_cpu: Callable[[], float] | None = None


class _StepClock:
    def __init__(self, cpu: Callable[[], float] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._cpu = cpu

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        c0 = self._cpu() if self._cpu is not None else 0.0
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - t0
            if self._cpu is not None:
                self.cpu_seconds[name] = self._cpu() - c0


class _Evidence:
    """The runner's default evidence, with Playwright's own API and nothing else."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.context: BrowserContext | None = None
        self.parts = 0

    async def start(self, context: BrowserContext, title: str) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.context = context
        await context.tracing.start(screenshots=False, snapshots=False, sources=False)
        await context.tracing.start_chunk(title=title)

    async def _stop_chunk(self) -> None:
        assert self.context is not None and self.folder is not None
        self.parts += 1
        await self.context.tracing.stop_chunk(path=str(self.folder / f"trace-{self.parts}.zip"))

    async def pause(self) -> None:
        """Stop tracing while secrets are typed (the trace would record them)."""
        if self.context is not None:
            await self._stop_chunk()

    async def resume(self) -> None:
        if self.context is not None:
            await self.context.tracing.start_chunk()

    async def screenshot(self, page: Page, name: str) -> None:
        if self.folder is not None:
            await page.screenshot(path=str(self.folder / name), full_page=True)

    async def finish(self) -> None:
        if self.context is not None:
            await self._stop_chunk()
            await self.context.tracing.stop()


async def submit_case(
    page: Page,
    base_url: str,
    case: dict[str, Any],
    login: dict[str, str],
    clock: _StepClock,
    evidence: _Evidence,
) -> str:
    """Log in, find the vehicle, fill both steps, submit; return the confirmation reference."""
    payload = case["payload"]
    async with clock.step("login"):
        await page.goto(base_url + "/login")
        await evidence.pause()
        await page.get_by_label("Dealer code", exact=True).fill(case["dealer_id"])
        await page.get_by_label("Username", exact=True).fill(login["username"])
        await page.get_by_label("Password", exact=True).fill(login["password"])
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await expect(page.get_by_role("link", name="Sign out", exact=True)).to_be_visible()
        await evidence.resume()
    async with clock.step("search"):
        await page.goto(base_url + "/claims/new")
        await page.get_by_label("VIN", exact=True).fill(case["vin"])
        await page.get_by_role("button", name="Search", exact=True).click()
        await page.get_by_role("button", name="Start claim", exact=True).click()
    async with clock.step("fill"):
        await page.get_by_label("RO number", exact=True).fill(case["case_id"])
        await page.get_by_label("Repair date (YYYY-MM-DD)", exact=True).fill(payload["repair_date"])
        await page.get_by_label("Mileage", exact=True).fill(str(payload["mileage"]))
        await page.get_by_label("Part number", exact=True).fill(payload["part_number"])
        await page.get_by_role("button", name="Next", exact=True).click()
        await page.get_by_label("Complaint", exact=True).fill(payload["complaint"])
        await page.get_by_label("Cause", exact=True).fill(payload["cause"])
        await page.get_by_label("Correction", exact=True).fill(payload["correction"])
        await page.get_by_label("Labor hours", exact=True).fill(f"{payload['labor_hours']:g}")
        await page.get_by_role("button", name="Next", exact=True).click()
        await page.get_by_label(ATTESTATION, exact=True).wait_for()
    if evidence.folder is not None:
        async with clock.step("pre_submit_evidence"):
            await evidence.screenshot(page, "pre_submit.png")
    async with clock.step("submit"):
        await page.get_by_label(ATTESTATION, exact=True).check()
        await page.get_by_role("button", name="Submit claim", exact=True).click()
    async with clock.step("confirm"):
        text = await page.get_by_test_id("reference-number").inner_text()
        match = REFERENCE.search(text)
        if match is None:
            raise ValueError(f"no reference in {text!r}")
    if evidence.folder is not None:
        async with clock.step("post_confirm_evidence"):
            await evidence.screenshot(page, "post_confirm.png")
    return match.group(0)


async def _run_job(
    pw: Playwright,
    shared: Browser | None,
    settings: BaselineSettings,
    base_url: str,
    index: int,
    case: dict[str, Any],
    login: dict[str, str],
) -> JobTiming:
    t0 = time.perf_counter()
    clock = _StepClock(settings.step_cpu)
    folder = settings.scratch / case["case_id"] if settings.evidence else None
    evidence = _Evidence(folder)
    video_dir = (
        Path(tempfile.mkdtemp(prefix="video-", dir=settings.scratch))
        if folder and settings.record_video and index % settings.keep_video_every == 0
        else None
    )
    browser: Browser | None = shared
    context: BrowserContext | None = None
    page: Page | None = None
    reference: str | None = None
    error: str | None = None
    try:
        if browser is None:
            browser = await _launch(pw, settings)
        w, h = settings.viewport
        vw, vh = settings.video_size
        context = await browser.new_context(
            viewport={"width": w, "height": h},
            record_video_dir=str(video_dir) if video_dir else None,
            record_video_size={"width": vw, "height": vh} if video_dir else None,
        )
        page = await context.new_page()
        page.set_default_timeout(settings.timeout_ms)
        await evidence.start(context, case["case_id"])
        reference = await submit_case(page, base_url, case, login, clock, evidence)
        await evidence.finish()
    except Exception as exc:  # a failed job is counted, never fatal to the run
        error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        video = page.video if page is not None else None
        if context is not None:
            with contextlib.suppress(Exception):
                await context.close()
        if video is not None and folder is not None:
            with contextlib.suppress(Exception):
                path = Path(await video.path())  # written when the context closed
                path.replace(folder / "video.webm")  # only the sampled share records
        if video_dir is not None:
            shutil.rmtree(video_dir, ignore_errors=True)
        if shared is None and browser is not None:
            with contextlib.suppress(Exception):
                await browser.close()
    return JobTiming(
        case_id=case["case_id"],
        ok=error is None,
        seconds=time.perf_counter() - t0,
        steps=clock.seconds,
        reference=reference,
        error=error,
        step_cpu=clock.cpu_seconds,
    )


async def _launch(pw: Playwright, settings: BaselineSettings) -> Browser:
    return await pw.chromium.launch(
        executable_path=settings.executable_path, headless=True, args=settings.args
    )


async def run_baseline_async(
    settings: BaselineSettings,
    base_url: str,
    cases: list[dict[str, Any]],
    logins: dict[str, dict[str, str]],
) -> VariantRun:
    """Run every case, `cap` at a time; wall time includes the driver and browser start."""
    t0 = time.perf_counter()
    cpu0 = client_cpu_seconds()
    results: list[JobTiming] = []
    launches = 0
    work: Iterator[tuple[int, dict[str, Any]]] = iter(enumerate(cases))
    async with async_playwright() as pw:
        shared = None if settings.browser_per_job else await _launch(pw, settings)

        async def worker() -> None:
            nonlocal launches
            for index, case in work:  # the iterator is shared: each job is taken once
                launches += settings.browser_per_job
                results.append(
                    await _run_job(
                        pw, shared, settings, base_url, index, case, logins[case["dealer_id"]]
                    )
                )

        try:
            await asyncio.gather(*(worker() for _ in range(settings.cap)))
        finally:
            if shared is not None:
                await shared.close()
    return VariantRun(
        wall_s=time.perf_counter() - t0,
        jobs=results,
        concurrency=settings.cap,
        browser_launches=launches if settings.browser_per_job else 1,
        cpu_s=client_cpu_seconds() - cpu0,
    )


def run_baseline(
    settings: BaselineSettings,
    base_url: str,
    cases: list[dict[str, Any]],
    logins: dict[str, dict[str, str]],
) -> VariantRun:
    """Synchronous entry point of `run_baseline_async`."""
    return asyncio.run(run_baseline_async(settings, base_url, cases, logins))
