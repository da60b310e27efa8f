"""Walk an adapter through a portal up to (never through) the submit click, step by step.

The loop a person uses while writing a selector file: log in, search, fill every form step,
stop on the review page with its submit button found, then look a known submission up; each
step is screenshotted and reported, and a missing element comes with the page's closest
candidates instead of a bare timeout.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Page
from pydantic import BaseModel, Field

from submissions_pipeline.credentials import DealerCredentials
from submissions_pipeline.domain import Case
from submissions_pipeline.runner.adapter import PortalAdapter
from submissions_pipeline.runner.browser import BrowserWorker
from submissions_pipeline.runner.config import BrowserSettings, EvidenceSettings
from submissions_pipeline.runner.drift import diagnose
from submissions_pipeline.runner.errors import SelectorMissing, classify


class CheckStep(BaseModel):
    """One step of the walk: what was found, or what was missing and what looks closest."""

    step: str
    ok: bool
    seconds: float
    detail: str = ""
    reason_code: str | None = None
    missing: dict[str, str] | None = None
    candidates: list[dict[str, str]] = Field(default_factory=list)
    #: A JSON merge patch for the selector file that would use the closest candidate.
    suggested_patch: dict | None = None
    selector_file: str | None = None
    screenshot: str | None = None


class AdapterCheck(BaseModel):
    """The whole walk of one adapter on one portal."""

    oem: str
    base_url: str
    steps: list[CheckStep] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    def lines(self) -> list[str]:
        """The report as a person reads it in a terminal."""
        out = []
        for s in self.steps:
            mark = "ok  " if s.ok else "FAIL"
            out.append(f"{mark} {s.step:8} {s.seconds:5.1f}s  {s.detail}")
            if s.missing:
                out.append(f"       missing: {s.missing}")
            for c in s.candidates:
                out.append(f"       closest: {c}")
            if s.suggested_patch:
                patch = json.dumps(s.suggested_patch)
                out.append(f"       suggested patch for {s.selector_file}: {patch}")
            if s.screenshot:
                out.append(f"       screenshot: {s.screenshot}")
        out.append("adapter check passed" if self.ok else "adapter check FAILED")
        return out


@contextlib.asynccontextmanager
async def _no_recording(*_secrets: str) -> AsyncIterator[None]:
    yield  # the check records no trace, so there is nothing to keep secrets out of


async def check_adapter(
    adapter: PortalAdapter,
    base_url: str,
    creds: DealerCredentials,
    case: Case,
    out_dir: Path,
    *,
    browser: BrowserSettings | None = None,
    lookup_case: Case | None = None,
    lookup_reference: str | None = None,
    action_timeout_ms: float | None = None,
) -> AdapterCheck:
    """Walk login → search → form steps → review (stopping before submit) → lookup."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = AdapterCheck(oem=adapter.oem, base_url=base_url)
    settings = (browser or BrowserSettings()).model_copy(update={"prewarm": False})
    async with BrowserWorker(settings, EvidenceSettings(video="off"), out_dir) as worker:
        jc = await worker.open_context(record_video=False)
        page = jc.page
        if action_timeout_ms is not None:
            page.set_default_timeout(action_timeout_ms)
        await adapter.install_popup_handlers(page)
        steps = [
            ("login", lambda: adapter.ensure_logged_in(page, base_url, creds, _no_recording)),
            ("search", lambda: adapter.search(page, base_url, case)),
            ("fill", lambda: adapter.fill(page, case)),
        ]
        if lookup_case is not None:
            steps.append(
                ("lookup", lambda: _lookup(adapter, page, base_url, lookup_case, lookup_reference))
            )
        for n, (name, run) in enumerate(steps, start=1):
            step = await _walk(page, name, run, out_dir / f"{n:02d}-{name}.png")
            report.steps.append(step)
            if not step.ok:
                break
        await worker.close_context(jc)
    return report


async def _lookup(
    adapter: PortalAdapter, page: Page, base_url: str, case: Case, reference: str | None
) -> str:
    found = await adapter.lookup(page, base_url, case, reference)
    if found is None:
        return f"the portal has no submission for {case.case_id} ({case.vin})"
    return f"found {case.case_id}: reference {found.reference}"


async def _walk(page: Page, name: str, run, shot: Path) -> CheckStep:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    step = CheckStep(step=name, ok=True, seconds=0)
    try:
        result = await run()
        step.detail = result if isinstance(result, str) else "found every element"
        if name == "fill":
            step.detail = "every form step filled; review page with its submit button (not clicked)"
    except Exception as exc:
        failure = classify(exc, step=name, awaiting_confirmation=False)
        step.ok, step.detail = False, failure.message
        step.reason_code = failure.reason.value
        if isinstance(failure, SelectorMissing):
            found = await diagnose(page, failure)
            step.missing, step.candidates = found.missing, found.candidates
            step.suggested_patch, step.selector_file = found.suggested_patch, found.selector_file
    step.seconds = round(time.perf_counter() - t0, 2)
    with contextlib.suppress(Exception):
        await page.screenshot(path=str(shot), full_page=True)
        step.screenshot = str(shot)
    return step
