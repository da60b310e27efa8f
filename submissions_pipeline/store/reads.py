"""The store's read queries: jobs, their events, queue stats and step timings, never a write."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, false, func, or_, select

from submissions_pipeline.domain import CLAIMABLE_STATES, Job, JobEvent, SubmissionState
from submissions_pipeline.domain.clock import Clock
from submissions_pipeline.domain.stats import percentile
from submissions_pipeline.store.errors import JobNotFound
from submissions_pipeline.store.models import JobSearch, QueueStats, _aware, _row_to_job
from submissions_pipeline.store.reconnect import reconnecting
from submissions_pipeline.store.schema import job_events, job_steps, jobs
from submissions_pipeline.store.statements import _SELECT_JOB

S = SubmissionState


class JobReads:
    """The read half of `JobStore`: one short read-only connection per call, re-run on a drop."""

    engine: Engine
    clock: Clock

    @reconnecting
    def get(self, job_id: str) -> Job:
        """One job by id."""
        with self.engine.connect() as conn:
            row = conn.execute(_SELECT_JOB, {"sel_job_id": job_id}).first()
        if row is None:
            raise JobNotFound(job_id)
        return _row_to_job(row)

    @reconnecting
    def list_jobs(
        self,
        *,
        oem: str | None = None,
        states: Iterable[SubmissionState] | None = None,
        run_id: str | None = None,
        updated_since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs filtered by OEM, state, run and recency; newest update last."""
        q = select(jobs).order_by(jobs.c.updated_at, jobs.c.job_id)
        if oem is not None:
            q = q.where(jobs.c.oem == oem)
        if states is not None:
            q = q.where(jobs.c.state.in_([S(s).value for s in states]))
        if run_id is not None:
            q = q.where(jobs.c.run_id == run_id)
        if updated_since is not None:
            q = q.where(jobs.c.updated_at >= updated_since)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [_row_to_job(r) for r in conn.execute(q)]

    @reconnecting
    def find_jobs(
        self, search: JobSearch, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[Job], int]:
        """One page of the jobs `search` matches, newest update first, and how many match."""
        where = _search_clauses(search)
        page = (
            select(jobs)
            .where(*where)
            .order_by(jobs.c.updated_at.desc(), jobs.c.job_id.desc())
            .offset(offset)
            .limit(limit)
        )
        count = select(func.count()).select_from(jobs).where(*where)
        with self.engine.connect() as conn:
            found = [_row_to_job(r) for r in conn.execute(page)]
            total = int(conn.execute(count).scalar_one())
        return found, total

    @reconnecting
    def events(self, job_id: str | None = None) -> list[JobEvent]:
        """The append-only history, for one job or all, in order."""
        q = select(job_events).order_by(job_events.c.event_id)
        if job_id is not None:
            q = q.where(job_events.c.job_id == job_id)
        with self.engine.connect() as conn:
            out = []
            for r in conn.execute(q):
                m = dict(r._mapping)
                m["at"] = _aware(m["at"])
                m["detail"] = m.get("detail") or {}
                out.append(JobEvent.model_validate(m))
            return out

    @reconnecting
    def stats(
        self, *, oem: str | None = None, now: datetime | None = None, window: int = 1000
    ) -> QueueStats:
        """Depth per OEM and state, queue age, and p50/p95 job time over the last `window` jobs."""
        now = now or self.clock()
        claimable = [s.value for s in CLAIMABLE_STATES]
        with self.engine.connect() as conn:
            q = select(jobs.c.oem, jobs.c.state, func.count()).group_by(jobs.c.oem, jobs.c.state)
            due_q = select(func.count(), func.min(jobs.c.next_attempt_at)).where(
                jobs.c.state.in_(claimable), jobs.c.next_attempt_at <= now
            )
            dur_q = (
                select(jobs.c.duration_s)
                .where(jobs.c.duration_s.is_not(None))
                .order_by(jobs.c.finished_at.desc())
                .limit(window)
            )
            if oem is not None:
                q, due_q, dur_q = (x.where(jobs.c.oem == oem) for x in (q, due_q, dur_q))
            depth: dict[str, dict[str, int]] = {}
            for o, st, n in conn.execute(q):
                depth.setdefault(o, {})[st] = n
            due, oldest = conn.execute(due_q).one()
            durations = [d for (d,) in conn.execute(dur_q)]
        oldest = _aware(oldest)
        running = sum(
            d.get(S.RUNNING.value, 0) + d.get(S.SUBMITTED.value, 0) for d in depth.values()
        )
        return QueueStats(
            depth=depth,
            due_now=due,
            oldest_due_age_s=(now - oldest).total_seconds() if oldest else None,
            running=running,
            p50_job_s=percentile(durations, 50),
            p95_job_s=percentile(durations, 95),
            finished_jobs_measured=len(durations),
        )

    @reconnecting
    def step_timings(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """Step timing rows, for one job or all."""
        q = select(job_steps).order_by(job_steps.c.id)
        if job_id is not None:
            q = q.where(job_steps.c.job_id == job_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def _existing_for_case(self, case_id: str, key: str) -> Job | None:
        """The job already standing for a case: same key, or any live or successful one."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(jobs).where(jobs.c.case_id == case_id).order_by(jobs.c.created_at)
            ).all()
        for row in rows:
            job = _row_to_job(row)
            if job.idempotency_key == key:
                return job
            if job.state not in (S.FAILED_TERMINAL, S.DEAD_LETTERED):
                return job
        return None


def _search_clauses(search: JobSearch) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a search, the same SQL on SQLite and PostgreSQL."""
    where: list[ColumnElement[bool]] = []
    if search.oem:
        where.append(jobs.c.oem == search.oem)
    if search.state:
        where.append(jobs.c.state == search.state)
    if search.reason:
        where.append(jobs.c.reason_code == search.reason)
    if search.error_class:
        where.append(jobs.c.failure["error_class"].as_string() == search.error_class)
    if search.updated_on:
        try:
            day = datetime.combine(date.fromisoformat(search.updated_on), time(), UTC)
        except ValueError:
            return [false()]  # not a date: nothing was updated on it
        where.append(and_(jobs.c.updated_at >= day, jobs.c.updated_at < day + timedelta(days=1)))
    if search.by == "automation":
        where.append(jobs.c.submitted_by_automation.is_(True))
    elif search.by == "human":
        where.append(jobs.c.submitted_by_automation.is_(False))
        where.append(jobs.c.state == S.CRM_UPDATED.value)
    if search.text:
        needle = search.text.lower()
        columns = (jobs.c.case_id, jobs.c.vin, func.coalesce(jobs.c.reference, ""), jobs.c.job_id)
        where.append(or_(*(func.lower(c).contains(needle, autoescape=True) for c in columns)))
    return where
