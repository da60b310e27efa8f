"""One attempt at one job: the templated steps, milestones, evidence and the outcome's routing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from random import Random

from pydantic import BaseModel

from submissions_pipeline.artifacts import ArtifactStoreUnavailable
from submissions_pipeline.credentials import MissingCredentials, redact
from submissions_pipeline.domain import (
    ErrorClass,
    FailureObject,
    Job,
    ReasonCode,
    ReconciliationPolicy,
    Step,
    SubmissionState,
)
from submissions_pipeline.domain.evidence import (
    LOOKUP_SCREENSHOT,
    POST_CONFIRM_SCREENSHOT,
    PRE_SUBMIT_SCREENSHOT,
    EvidenceManifest,
    evidence_folder_date,
)
from submissions_pipeline.domain.reconciliation import absence_proven
from submissions_pipeline.failpoints import failpoint
from submissions_pipeline.runner.browser import BrowserWorker, JobContext
from submissions_pipeline.runner.config import BatchConfig
from submissions_pipeline.runner.deps import RunnerDeps
from submissions_pipeline.runner.drift import aria_snapshot, diagnose
from submissions_pipeline.runner.errors import (
    AbsenceUnproven,
    AdapterBug,
    AuthFailure,
    MissingEvidence,
    SelectorMissing,
    SubmissionFailure,
    classify,
)
from submissions_pipeline.runner.evidence import EvidenceRecorder
from submissions_pipeline.runner.steps import StepClock
from submissions_pipeline.store import LeaseLost

S = SubmissionState


class JobOutcome(BaseModel):
    """What one attempt ended in, for the batch report and Dagster metadata."""

    job_id: str
    case_id: str
    oem: str
    attempt: int
    state: SubmissionState
    reference: str | None = None
    reconciled: bool = False
    reason_code: ReasonCode | None = None
    error_class: ErrorClass | None = None
    #: The failure's (redacted) message and the step it happened in, for the run log.
    message: str = ""
    last_step: str | None = None
    seconds: float
    halt_oem: bool = False
    alert: bool = False
    manifest_key: str | None = None
    step_seconds: dict[str, float] = {}
    #: CPU seconds per step, when the worker was given a CPU clock (the benchmark).
    step_cpu_s: dict[str, float] = {}


@dataclass
class SessionCache:
    """Logged-in storage states per (OEM, dealer): +12 % throughput over logging in per job."""

    max_age_s: float
    _states: dict[tuple[str, str], tuple[float, dict]] = field(default_factory=dict)

    def get(self, oem: str, dealer_id: str) -> dict | None:
        entry = self._states.get((oem, dealer_id))
        if entry is None or time.monotonic() - entry[0] > self.max_age_s:
            return None
        return entry[1]

    def put(self, oem: str, dealer_id: str, state: dict) -> None:
        if self.max_age_s > 0:
            self._states[(oem, dealer_id)] = (time.monotonic(), state)

    def forget(self, oem: str, dealer_id: str) -> None:
        self._states.pop((oem, dealer_id), None)


class _Attempt:
    """State of one running attempt (kept out of the function body for readability)."""

    def __init__(self, job: Job, deps: RunnerDeps, cfg: BatchConfig, worker_id: str):
        self.job = job
        self.deps = deps
        self.cfg = cfg
        self.worker_id = worker_id
        self.clock = StepClock(cfg.budgets, deps.cpu_clock)
        self.log: list[str] = []
        self.reference: str | None = None
        self.reconciled = False
        self.awaiting_confirmation = False
        self.sampled = False  # this attempt is in the sampled share (video kept on success)

    async def milestone(self, step: Step) -> None:
        self.log.append(f"{self.clock.elapsed_s:7.2f}s {step.value}")
        self.job = await asyncio.to_thread(
            self.deps.store.record_milestone,
            self.job.job_id,
            self.worker_id,
            step,
            lease_s=self.cfg.lease_s,
        )


async def _heartbeat(deps: RunnerDeps, job_id: str, worker_id: str, lease_s: float) -> None:
    while True:
        await asyncio.sleep(max(lease_s / 3, 0.5))
        ok = await asyncio.to_thread(deps.store.heartbeat, job_id, worker_id, lease_s=lease_s)
        if not ok:
            return
        if deps.on_lease_renewed is not None:
            deps.on_lease_renewed()


async def process_job(
    job: Job,
    worker: BrowserWorker,
    deps: RunnerDeps,
    cfg: BatchConfig,
    worker_id: str,
    sessions: SessionCache,
    rng: Random,
) -> JobOutcome:
    """Run one claimed job to a truthful state: submitted with evidence, or routed failure."""
    adapter = deps.adapters[job.oem]
    base_url = deps.base_url(job.oem)
    case = job.case()
    a = _Attempt(job, deps, cfg, worker_id)
    try:
        creds = deps.credentials.get(job.oem, job.dealer_id)
        secrets = creds.secrets()
    except MissingCredentials as exc:
        creds, secrets = None, []
        missing_creds: Exception | None = exc
    else:
        missing_creds = None
    rec = EvidenceRecorder(
        job,
        cfg.evidence,
        secrets,
        rich_trace=job.attempt > 1 and cfg.evidence.trace_snapshots_on_retry,
    )
    jc: JobContext | None = None
    a.sampled = rng.random() < cfg.evidence.video_sample_rate
    beat = asyncio.ensure_future(_heartbeat(deps, job.job_id, worker_id, cfg.lease_s))
    try:
        try:
            if missing_creds is not None:
                raise AuthFailure(
                    str(missing_creds), reason=ReasonCode.LOGIN_REJECTED, step="login"
                )
            async with asyncio.timeout(cfg.budgets.job_s):
                jc = await worker.open_context(
                    record_video=cfg.evidence.records_video(job.attempt, a.sampled),
                    storage_state=sessions.get(job.oem, job.dealer_id),
                )
                page = jc.page
                page.set_default_timeout(cfg.budgets.action_timeout_ms)
                await adapter.install_popup_handlers(page)
                await rec.start_trace(jc.context)
                async with a.clock.step("login"):
                    await adapter.ensure_logged_in(page, base_url, creds, rec.secret_section)
                await a.milestone(Step.LOGIN)
                sessions.put(job.oem, job.dealer_id, await adapter.storage_state(page))

                if job.submit_attempted:
                    # The portal may already hold this case: never submit blind.
                    async with a.clock.step("reconcile"):
                        found = await adapter.lookup(page, base_url, case, job.reference)
                        if found is not None:
                            a.reference, a.reconciled = found.reference, True
                            await rec.screenshot(page, LOOKUP_SCREENSHOT)
                    await a.milestone(Step.RECONCILE)
                    if a.reference is None:
                        await _prove_absence(a, adapter.settings.reconciliation, case.case_id)

                if a.reference is None:
                    async with a.clock.step("search"):
                        await adapter.search(page, base_url, case)
                    await a.milestone(Step.SEARCH)
                    async with a.clock.step("fill"):
                        await adapter.fill(page, case)
                    await a.milestone(Step.FILL)
                    async with a.clock.step("pre_submit_evidence"):
                        await rec.screenshot(page, PRE_SUBMIT_SCREENSHOT)
                    await a.milestone(Step.PRE_SUBMIT_EVIDENCE)
                    failpoint("before_submit")
                    # Written before the click: a crash from here on is ambiguous, never blind.
                    await a.milestone(Step.SUBMIT_CLICKED)
                    a.awaiting_confirmation = True
                    async with a.clock.step("submit"):
                        await adapter.submit(page)
                    failpoint("after_submit_click")
                    async with a.clock.step("confirm"):
                        a.reference = await adapter.read_reference(page)
                    a.awaiting_confirmation = False
                    async with a.clock.step("post_confirm_evidence"):
                        await rec.screenshot(page, POST_CONFIRM_SCREENSHOT)

                a.job = await asyncio.to_thread(
                    deps.store.transition,
                    job.job_id,
                    S.SUBMITTED,
                    actor=worker_id,
                    lease_owner=worker_id,
                    step=Step.REFERENCE_PARSED.value,
                    reference=a.reference,
                    submitted_by_automation=True,
                )
                failpoint("after_reference")
                await rec.finish_trace()
            video = await worker.close_context(jc)
            jc = None
            if cfg.evidence.keeps_video(failed=False, sampled=a.sampled):
                rec.add_video(video)
            rec.add_step_log(a.clock.timings, a.log)
            async with a.clock.step("evidence_upload"):
                manifest = await asyncio.to_thread(
                    rec.upload,
                    deps.artifacts,
                    reference=a.reference,
                    reconciled=a.reconciled,
                    timings=a.clock.timings,
                )
            missing = manifest.missing_for_success()
            if missing:
                raise MissingEvidence(
                    f"evidence incomplete: missing {', '.join(missing)}", step="evidence_upload"
                )
            a.job = await asyncio.to_thread(
                deps.store.transition,
                job.job_id,
                S.EVIDENCE_STORED,
                actor=worker_id,
                lease_owner=worker_id,
                step=Step.EVIDENCE_STORED.value,
                evidence=_manifest_ref(deps, job, manifest),
                duration_s=a.clock.elapsed_s,
            )
            return _outcome(a, manifest)
        except Exception as exc:  # every failure ends routed, never raised out of a batch
            return await _fail(a, exc, rec, jc, worker, rng, secrets)
    finally:
        beat.cancel()
        try:
            # Waits for the heartbeat's end without taking its error; a stop that cancels this
            # attempt meanwhile still goes on up (suppressed, the stopped batch would go on to
            # claim its next job).
            await asyncio.wait([beat])
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    deps.store.record_step_timings,
                    job.job_id,
                    job.attempt,
                    [(t.step, t.seconds, t.ok) for t in a.clock.timings],
                )
        finally:
            rec.cleanup()


async def _prove_absence(a: _Attempt, policy: ReconciliationPolicy, case_id: str) -> None:
    """After a lookup miss: go on to submit only when the misses prove the case absent under
    the OEM's policy and a try is left; otherwise fail so routing looks again or asks a person."""
    await a.milestone(Step.LOOKUP_MISSED)
    scale = a.deps.store.policy.time_scale
    if not absence_proven(policy, a.job, time_scale=scale):
        raise AbsenceUnproven(
            f"the portal's lookup does not show {case_id} ({a.job.lookup_misses} miss(es) since "
            f"the submit click); under the OEM's policy ({policy.proof}, lag "
            f"{policy.search_lag_s:g} s, {policy.negative_lookups} misses) that is no proof yet",
            step="reconcile",
        )
    if not a.deps.store.policy.may_retry(a.job.tries):
        raise AbsenceUnproven(
            f"{case_id} is proven absent from the portal but all {a.job.tries} tries are used",
            reason=ReasonCode.RESUBMIT_BUDGET_SPENT,
            step="reconcile",
        )
    await a.milestone(Step.ABSENCE_PROVEN)


def _manifest_ref(deps: RunnerDeps, job: Job, manifest: EvidenceManifest) -> dict:
    key = deps.artifacts.artifact_key(
        manifest.oem,
        manifest.job_id,
        manifest.attempt,
        "manifest.json",
        when=evidence_folder_date(job),
    )
    return {"manifest_key": key, **manifest.model_dump(mode="json")}


def _outcome(a: _Attempt, manifest: EvidenceManifest | None) -> JobOutcome:
    job = a.job
    return JobOutcome(
        job_id=job.job_id,
        case_id=job.case_id,
        oem=job.oem,
        attempt=job.attempt,
        state=job.state,
        reference=job.reference or a.reference,
        reconciled=a.reconciled,
        reason_code=job.reason_code if job.state is not S.EVIDENCE_STORED else None,
        error_class=job.reason_code.error_class
        if job.reason_code and job.state is not S.EVIDENCE_STORED
        else None,
        seconds=round(a.clock.elapsed_s, 3),
        manifest_key=(job.evidence or {}).get("manifest_key"),
        step_seconds={t.step: round(t.seconds, 3) for t in a.clock.timings},
        step_cpu_s={t.step: round(t.cpu_s, 4) for t in a.clock.timings if t.cpu_s is not None},
    )


async def _fail(
    a: _Attempt,
    exc: Exception,
    rec: EvidenceRecorder,
    jc: JobContext | None,
    worker: BrowserWorker,
    rng: Random,
    secrets: list[str],
) -> JobOutcome:
    deps, job = a.deps, a.job
    failure_exc: SubmissionFailure = classify(
        exc, step=a.clock.current, awaiting_confirmation=a.awaiting_confirmation
    )
    if jc is not None and jc.crashed:
        failure_exc = classify(
            SubmissionFailure(
                "page crashed", reason=ReasonCode.BROWSER_CRASHED, step=failure_exc.step
            ),
            step=failure_exc.step,
            awaiting_confirmation=a.awaiting_confirmation,
        )
    page = jc.page if jc is not None else None
    if isinstance(failure_exc, AdapterBug):
        await rec.dom_snapshot(page)
    if isinstance(failure_exc, SelectorMissing) and page is not None and not page.is_closed():
        # What the page offers instead, and the selector-file patch that would use it.
        diagnosis = await diagnose(page, failure_exc)
        snapshot = await aria_snapshot(page)
        if snapshot:
            rec.add_text("aria-snapshot.yaml", snapshot)
        rec.add_text("selector-drift.json", diagnosis.model_dump_json(indent=2))
        if diagnosis.suggested_patch:
            patch = json.dumps(diagnosis.suggested_patch)
            failure_exc.message += f"; suggested patch for {diagnosis.selector_file}: {patch}"
    await rec.try_screenshot(page, "failure.png")
    await rec.finish_trace()
    if jc is not None:
        video = await worker.close_context(jc)
        if a.cfg.evidence.keeps_video(failed=True, sampled=a.sampled):
            rec.add_video(video)  # None when this attempt recorded none
    failure = FailureObject.of(
        failure_exc.reason,
        redact(failure_exc.message, secrets),
        last_step=failure_exc.step or job.last_step,
        attempt=job.attempt,
        job_id=job.job_id,
        case_id=job.case_id,
        oem=job.oem,
        field_errors=failure_exc.field_errors,
    )
    rec.add_step_log(a.clock.timings, a.log)
    manifest: EvidenceManifest | None = None
    try:
        rec.add_failure(failure)
        manifest = await asyncio.to_thread(
            rec.upload,
            deps.artifacts,
            reference=a.reference,
            reconciled=a.reconciled,
            timings=a.clock.timings,
        )
        links = {i.name: i.key for i in manifest.items}
        shot = manifest.item("failure.png")
        failure = failure.model_copy(
            update={
                "artifacts": links,
                "screenshot_url": (
                    deps.artifacts.job_link(job.job_id, attempt=job.attempt) if shot else None
                ),
            }
        )
    except ArtifactStoreUnavailable as store_exc:
        failure = failure.model_copy(
            update={"message": f"{failure.message} (evidence not stored: {store_exc})"}
        )
    try:
        a.job, decision = await asyncio.to_thread(
            deps.store.record_failure,
            job.job_id,
            failure,
            actor=a.worker_id,
            lease_owner=a.worker_id,
            rng=rng,
            duration_s=a.clock.elapsed_s,
            reconciliation=deps.adapters[job.oem].settings.reconciliation,
        )
    except LeaseLost:
        # The reaper took the job back while we worked; its state is already truthful.
        a.job = await asyncio.to_thread(deps.store.get, job.job_id)
        out = _outcome(a, manifest)
        out.reason_code = ReasonCode.WORKER_LOST
        return out
    out = _outcome(a, manifest)
    out.reason_code, out.error_class = failure.reason_code, failure.error_class
    out.message, out.last_step = failure.message, failure.last_step
    out.halt_oem, out.alert = decision.halt_oem_batch, decision.alert
    return out
