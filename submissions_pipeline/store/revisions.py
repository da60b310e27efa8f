"""Case revisions in the job store: which job stands for a case, and whether it may still take
a new version of the case (`JobStore.revise_case` applies it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from submissions_pipeline.domain import Case, Job, SubmissionState
from submissions_pipeline.store.models import _row_to_job
from submissions_pipeline.store.schema import jobs

S = SubmissionState

#: A job in these states has not been handed to a worker, so a new version of its case can
#: replace its payload (when it never reached the submit click either).
REVISABLE_STATES = frozenset({S.QUEUED, S.RETRY_SCHEDULED})


def standing_job(conn: Connection, case_id: str) -> Job | None:
    """The job that answers for the case, its row locked; None when a new version needs a new job.

    That is the case's live or successful job (enqueue keeps it to one), else a dead letter
    that reached the submit click (the portal may hold the case). A case whose jobs all ended
    without reaching the portal has none: its new version is new work.
    """
    rows = conn.execute(
        select(jobs).where(jobs.c.case_id == case_id).order_by(jobs.c.created_at).with_for_update()
    ).all()
    history = [_row_to_job(r) for r in rows]
    live = [j for j in history if j.state not in (S.FAILED_TERMINAL, S.DEAD_LETTERED)]
    if live:
        return live[-1]
    maybe_submitted = [j for j in history if j.state is S.DEAD_LETTERED and j.submit_attempted]
    return maybe_submitted[-1] if maybe_submitted else None


def may_take(conn: Connection, job: Job, case: Case) -> bool:
    """Whether `job` may carry the case's new version: no worker holds it, it never reached the
    submit click, and no other job already stands for that exact version (keys are unique)."""
    if job.state not in REVISABLE_STATES or job.submit_attempted:
        return False
    taken = conn.execute(
        select(jobs.c.job_id).where(jobs.c.idempotency_key == case.idempotency_key())
    ).first()
    return taken is None


def revision_values(case: Case, now: datetime) -> dict[str, Any]:
    """The job columns that carry the case's version (everything `enqueue` takes from a case)."""
    return {
        "oem": case.oem,
        "dealer_id": case.dealer_id,
        "vin": case.vin,
        "idempotency_key": case.idempotency_key(),
        "payload": case.payload.model_dump(mode="json"),
        "priority": case.priority,
        "redaction_sensitive": case.redaction_sensitive,
        "test_record": case.test_record,
        "due_at": case.due_date,
        "updated_at": now,
    }
