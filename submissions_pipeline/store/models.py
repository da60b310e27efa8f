"""The records the store hands back and passes between its steps, and how rows become them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import BaseModel
from sqlalchemy import Row

from submissions_pipeline.domain import Job, ReasonCode, SubmissionState


class EnqueueResult(BaseModel):
    """What enqueue did: the job that now stands for the case, and whether it is new."""

    job_id: str
    created: bool
    state: SubmissionState


class QueueStats(BaseModel):
    """Queue depth and latency, the numbers ops watch (queue age is the alarm bell)."""

    depth: dict[str, dict[str, int]]
    due_now: int
    oldest_due_age_s: float | None
    running: int
    p50_job_s: float | None
    p95_job_s: float | None
    finished_jobs_measured: int


@dataclass(frozen=True)
class JobSearch:
    """What an operator looks for among the jobs (every field optional; empty means any).

    The store answers it in SQL, one page at a time, so a console over months of nights reads
    one page of jobs, not all of them.
    """

    oem: str = ""
    state: str = ""
    reason: str = ""
    error_class: str = ""
    updated_on: str = ""  # YYYY-MM-DD (UTC) of the last update
    by: str = ""  # "automation", or "human": in the CRM without the automation's submission
    text: str = ""  # part of a case id, VIN, portal reference or job id, any case


class _Locked(NamedTuple):
    """What the caller checks read from the locked row: no need to validate a whole Job."""

    job_id: str
    state: SubmissionState
    lease_owner: str | None
    version: int


@dataclass(frozen=True)
class _Change:
    """One compare-and-set on one job with the event it appends, ready for either backend.

    `allowed` and `lease_owner` are the caller checks as data, so PostgreSQL can apply them
    inside the one statement that writes; `check` raises the error the caller gets when the
    locked row fails them (and is what the portable path runs before it writes).
    """

    job_id: str
    allowed: frozenset[SubmissionState]
    lease_owner: str | None
    check: Callable[[_Locked], None]
    values: dict[str, Any]
    kind: str
    actor: str
    step: str | None
    reason_code: ReasonCode | str | None
    detail: dict[str, Any] | None
    at: datetime
    #: A counter the change moves in SQL (see statements.COUNTERS), or None.
    counter: str | None = None


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)


def _row_to_job(row: Row[Any]) -> Job:
    m = dict(row._mapping)
    for k in (
        "next_attempt_at",
        "lease_expires_at",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "crm_synced_at",
        "last_submit_at",
        "first_miss_at",
        "last_miss_at",
        "due_at",
    ):
        m[k] = _aware(m[k])
    m["evidence"] = m.get("evidence") or {}
    return Job.model_validate(m)


def _job_from_json(m: dict[str, Any]) -> Job:
    # A row as PostgreSQL's row_to_json gives it: timestamps are ISO strings with their offset.
    m["evidence"] = m.get("evidence") or {}
    return Job.model_validate(m)
