"""What the console's pages show, computed from the job store: tonight's numbers, job filters,
the review queue, and the human-readable forms of dates, durations and personal fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from submissions_pipeline.domain import ErrorClass, Job, JobEvent, SubmissionState
from submissions_pipeline.domain.stats import percentile
from submissions_pipeline.store import JobSearch, JobStore

S = SubmissionState

#: States the review queue holds: automation is done with them and a person should look.
REVIEW_STATES = (S.DEAD_LETTERED, S.FAILED_TERMINAL, S.NEEDS_REVIEW)
FAILED_STATES = (S.DEAD_LETTERED, S.FAILED_TERMINAL)
PAGE_SIZE = 50
#: Actors that are people, not automation: the console and the CLI prefix them so.
HUMAN_ACTOR_PREFIXES = ("person:", "operator:")


def when(dt: datetime | None, now: datetime | None = None) -> str:
    """`3 Mar 02:14 UTC (5 h ago)`; blank for None."""
    if dt is None:
        return ""
    now = now or datetime.now(UTC)
    return f"{dt.astimezone(UTC):%-d %b %H:%M} UTC ({duration((now - dt).total_seconds())} ago)"


def duration(seconds: float | None) -> str:
    """`850 ms`, `12.4 s`, `3 min 5 s`, `4 h 10 min`, `2 d 3 h`."""
    if seconds is None:
        return "-"
    s = abs(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    if s < 86400:
        return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    return f"{int(s // 86400)} d {int(s % 86400 // 3600)} h"


def masked_vin(vin: str) -> str:
    """The last six characters only: enough to tell cars apart, not to identify one."""
    return "•" * max(0, len(vin) - 6) + vin[-6:]


def case_fields(job: Job, *, full: bool) -> dict[str, str]:
    """The case as rows; for viewers the VIN is masked and, on redaction-sensitive cases, the
    free-text fields (which may hold names and addresses) too."""
    p = job.payload
    hidden = "hidden (redaction-sensitive)"
    free = not job.redaction_sensitive or full
    return {
        "Case": job.case_id,
        "Dealer": job.dealer_id,
        "VIN": job.vin if full else masked_vin(job.vin),
        "Repair date": f"{p.repair_date:%-d %b %Y}",
        "Mileage": f"{p.mileage:,}",
        "Complaint": p.complaint if free else hidden,
        "Cause": p.cause if free else hidden,
        "Correction": p.correction if free else hidden,
        "Labor hours": f"{p.labor_hours:g}",
        "Part number": p.part_number,
        "Priority": str(job.priority),
    }


def is_human(event: JobEvent) -> bool:
    return event.actor.startswith(HUMAN_ACTOR_PREFIXES)


@dataclass
class JobFilter:
    """The jobs page's filters, from the query string."""

    oem: str = ""
    state: str = ""
    reason: str = ""
    error_class: str = ""
    date: str = ""  # YYYY-MM-DD of the last update
    by: str = ""  # "automation" or "human"
    q: str = ""  # case id, VIN or reference
    page: int = 1

    @classmethod
    def from_query(cls, query: Any) -> JobFilter:
        try:
            page = max(1, int(query.get("page", 1)))
        except ValueError:
            page = 1
        return cls(
            **{k: (query.get(k) or "").strip() for k in cls.__dataclass_fields__ if k != "page"},
            page=page,
        )

    def search(self) -> JobSearch:
        """The store's search for these filters (the page is the console's own)."""
        return JobSearch(
            oem=self.oem,
            state=self.state,
            reason=self.reason,
            error_class=self.error_class,
            updated_on=self.date,
            by=self.by,
            text=self.q,
        )

    def query_string(self, **changes: Any) -> str:
        from urllib.parse import urlencode

        values = {k: getattr(self, k) for k in self.__dataclass_fields__} | changes
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def filtered_jobs(store: JobStore, f: JobFilter) -> tuple[list[Job], int]:
    """One page of matching jobs, newest update first, and how many match in all: the store
    filters and pages in SQL, so the page costs the same after a year of nights."""
    return store.find_jobs(f.search(), offset=(f.page - 1) * PAGE_SIZE, limit=PAGE_SIZE)


@dataclass
class OemTonight:
    """One OEM's last night at a glance."""

    oem: str
    name: str
    run_id: str | None
    counts: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    fail_rate: float | None = None
    p95_s: float | None = None
    jobs_per_hour: float | None = None
    oldest_queued_s: float | None = None
    slowest_step: tuple[str, float] | None = None
    business_hours: str = ""
    done_by_morning: bool | None = None


def tonight(
    store: JobStore, oems: dict[str, Any], now: datetime, window_h: float = 24
) -> list[OemTonight]:
    """Per OEM, the jobs touched in the last `window_h` hours: states, fail rate, timing, the
    slowest step by p95 and whether every new case was settled before business hours."""
    since = now - timedelta(hours=window_h)
    timings = store.step_timings()
    out = []
    for oem, settings in oems.items():
        jobs = store.list_jobs(oem=oem, updated_since=since)
        row = OemTonight(oem, getattr(settings, "display_name", oem), None)
        row.run_id = next((j.run_id for j in reversed(jobs) if j.run_id), None)
        for j in jobs:
            row.counts[j.state.value] = row.counts.get(j.state.value, 0) + 1
        done = [j for j in jobs if j.duration_s is not None]
        row.attempts = sum(j.attempt for j in jobs)
        # Earlier attempts all failed; the current one too when it ended failed or awaits a retry.
        failed = sum(1 for j in jobs if j.state in (*FAILED_STATES, S.RETRY_SCHEDULED)) + sum(
            max(0, j.attempt - 1) for j in jobs
        )
        row.fail_rate = failed / row.attempts if row.attempts else None
        row.p95_s = percentile([j.duration_s for j in done if j.duration_s is not None], 95)
        starts = [j.started_at for j in jobs if j.started_at]
        ends = [j.finished_at for j in jobs if j.finished_at]
        if starts and ends and max(ends) > min(starts):
            row.jobs_per_hour = len(ends) / ((max(ends) - min(starts)).total_seconds() / 3600)
        queued = [j.next_attempt_at for j in jobs if j.state is S.QUEUED and j.next_attempt_at]
        row.oldest_queued_s = (now - min(queued)).total_seconds() if queued else None
        ids = {j.job_id for j in jobs}
        by_step: dict[str, list[float]] = {}
        for t in timings:
            if t["job_id"] in ids:
                by_step.setdefault(t["step"], []).append(float(t["seconds"]))
        if by_step:
            step, secs = max(by_step.items(), key=lambda kv: percentile(kv[1], 95) or 0.0)
            row.slowest_step = (step, percentile(secs, 95) or 0.0)
        schedule = getattr(settings, "schedule", None)
        if schedule is not None:
            tz = ZoneInfo(schedule.timezone)
            start = schedule.business_hours_start
            row.business_hours = f"{start:%H:%M} {schedule.timezone}"
            local = now.astimezone(tz)
            opening = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
            if local < opening:
                opening -= timedelta(days=1)
            open_jobs = [j for j in jobs if j.created_at <= opening.astimezone(UTC)]
            # No case was due before opening: nothing to claim either way.
            row.done_by_morning = (
                all(
                    j.state not in (S.QUEUED, S.RUNNING, S.RETRY_SCHEDULED, S.SUBMITTED)
                    or (j.finished_at is not None and j.finished_at <= opening)
                    for j in open_jobs
                )
                if open_jobs
                else None
            )
        out.append(row)
    return out


ERROR_CLASSES = [c.value for c in ErrorClass]
