"""The pre-run canary: before an OEM's workers claim anything, walk one of its due cases up to
(never through) the submit click; a portal that no longer matches the adapter stops the run
instead of failing every case of the night."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pydantic import BaseModel

from submissions_pipeline.credentials import MissingCredentials
from submissions_pipeline.domain import CLAIMABLE_STATES, ErrorClass, ReasonCode
from submissions_pipeline.runner.check import AdapterCheck, CheckStep, check_adapter
from submissions_pipeline.runner.config import BrowserSettings
from submissions_pipeline.runner.deps import RunnerDeps
from submissions_pipeline.runner.interrupts import run_until_stopped


class CanaryResult(BaseModel):
    """What the canary saw: nothing to walk, a clean walk, or the step that failed."""

    oem: str
    case_id: str | None = None
    check: AdapterCheck | None = None

    @property
    def failed_step(self) -> CheckStep | None:
        if self.check is None:
            return None
        return next((s for s in self.check.steps if not s.ok), None)

    @property
    def blocks_run(self) -> bool:
        """Only an adapter that no longer matches the portal stops the run: a flaky site or a
        case's bad data is the workers' business, retried or routed case by case."""
        step = self.failed_step
        if step is None or step.reason_code is None:
            return False
        return ReasonCode(step.reason_code).error_class is ErrorClass.ADAPTER_BUG

    def summary(self) -> str:
        """One paragraph for the alert: the step, the broken selector and the suggested patch."""
        step = self.failed_step
        if self.check is None:
            return f"{self.oem}: canary skipped, no case is due"
        if step is None:
            return f"{self.oem}: canary walked {self.case_id} to the submit button"
        text = f"{self.oem}: canary failed at {step.step} ({step.reason_code}): {step.detail}"
        if step.missing:
            text += f"; missing selector {step.missing}"
        if step.suggested_patch:
            patch = json.dumps(step.suggested_patch)
            text += f"; suggested patch for {step.selector_file}: {patch}"
        return text


async def run_canary_async(
    deps: RunnerDeps, oem: str, browser: BrowserSettings, out_dir: Path, action_timeout_ms: float
) -> CanaryResult:
    """Walk the OEM's oldest waiting case (its data is the OEM's own: extra fields and all)
    through login, search and the form, stopping at the review page; claims nothing."""
    waiting = await asyncio.to_thread(
        deps.store.list_jobs, oem=oem, states=CLAIMABLE_STATES, limit=1
    )
    if not waiting:
        return CanaryResult(oem=oem)
    case = waiting[0].case()
    try:
        creds = deps.credentials.get(oem, case.dealer_id)
    except MissingCredentials:
        return CanaryResult(oem=oem)  # the workers route this as a login failure per case
    report = await check_adapter(
        deps.adapters[oem],
        deps.base_url(oem),
        creds,
        case,
        out_dir,
        browser=browser,
        action_timeout_ms=action_timeout_ms,
    )
    return CanaryResult(oem=oem, case_id=case.case_id, check=report)


def run_canary(
    deps: RunnerDeps, oem: str, browser: BrowserSettings, out_dir: Path, action_timeout_ms: float
) -> CanaryResult:
    """`run_canary_async` from synchronous code (a Dagster op, the CLI)."""
    return run_until_stopped(run_canary_async(deps, oem, browser, out_dir, action_timeout_ms))
