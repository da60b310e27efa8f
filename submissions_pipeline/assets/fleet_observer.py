"""Fleet mode's `submission_runs`: the run drives no browser; it waits for the OEM's due jobs to
settle and reports the attempts the fleet's workers made meanwhile, as if its own workers had.

Reading the attempts back from the job history (each claim event opens one, the transitions
after it say how it ended) keeps evidence bundles, CRM updates and checks the same in both modes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from submissions_pipeline.domain import JobEvent, Step, SubmissionState
from submissions_pipeline.domain.reasons import ReasonCode
from submissions_pipeline.runner import BatchReport, JobOutcome
from submissions_pipeline.store import JobStore

S = SubmissionState

#: How often the run looks at the queue while the fleet works.
FLEET_POLL_S = 1.0


def wait_until_settled(
    store: JobStore,
    oem: str,
    deadline: datetime,
    now: Callable[[], datetime],
    poll_s: float = FLEET_POLL_S,
) -> str:
    """Wait until nothing of the OEM is due or leased, or the time budget ends; says which."""
    while True:
        st = store.stats(oem=oem)
        if st.due_now == 0 and st.running == 0:
            return "fleet settled the due jobs"
        if now() >= deadline:
            return f"time budget spent: {st.due_now} due, {st.running} in flight"
        time.sleep(poll_s)


def fleet_attempts(
    store: JobStore, oem: str, since: datetime, stop_reason: str
) -> list[BatchReport]:
    """Every attempt at the OEM's jobs claimed since `since`, one report per worker."""
    reports: dict[str, BatchReport] = {}
    for job in store.list_jobs(oem=oem, updated_since=since):
        events = store.events(job.job_id)
        claims = [i for i, e in enumerate(events) if _is_claim(e)]
        for n, i in enumerate(claims):
            claim = events[i]
            if claim.at < since:
                continue
            end = claims[n + 1] if n + 1 < len(claims) else len(events)
            after = [e for e in events[i + 1 : end] if e.kind == "transition"]
            last = after[-1] if after else claim
            report = reports.setdefault(
                claim.actor,
                BatchReport(
                    worker_id=claim.actor,
                    oem=oem,
                    started_at=claim.at,
                    finished_at=claim.at,
                    stop_reason=stop_reason,
                ),
            )
            report.started_at = min(report.started_at, claim.at)
            report.finished_at = max(report.finished_at, last.at)
            failed = last.reason_code is not None and last.to_state is not S.EVIDENCE_STORED
            reason = ReasonCode(last.reason_code) if failed and last.reason_code else None
            report.outcomes.append(
                JobOutcome(
                    job_id=job.job_id,
                    case_id=job.case_id,
                    oem=oem,
                    attempt=n + 1,  # every claim starts the next attempt
                    state=last.to_state,
                    reference=job.reference if last.to_state is job.state else None,
                    reason_code=reason,
                    error_class=reason.error_class if reason else None,
                    last_step=last.step,
                    seconds=round((last.at - claim.at).total_seconds(), 3),
                    manifest_key=(job.evidence or {}).get("manifest_key"),
                )
            )
    return sorted(reports.values(), key=lambda r: r.worker_id)


def _is_claim(e: JobEvent) -> bool:
    return e.kind == "transition" and e.to_state is S.RUNNING and e.step == Step.CLAIMED.value
