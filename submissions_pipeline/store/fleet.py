"""The queue's side of the fleet: claims under fleet-wide caps, and the autoscaler's SQL.

Caps are counted and enforced inside the claim's own transaction, serialised by one lock (an
advisory transaction lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so however many workers
claim at once, a capped OEM or dealer never has more jobs leased than its cap. Uncapped OEMs keep
the one-statement claim. `desired_workers_query` writes the policy of `domain/fleet.py` as the
one SQL statement KEDA's PostgreSQL scaler runs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select, text

from submissions_pipeline.domain import CLAIMABLE_STATES, Job
from submissions_pipeline.domain.fleet import ConcurrencyCaps, FleetPolicy, jobs_at_risk
from submissions_pipeline.domain.oem import OemSchedule
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.store.models import _aware
from submissions_pipeline.store.schema import jobs
from submissions_pipeline.store.statements import claimable_select

#: Advisory lock key every capped claim takes (PostgreSQL): "caps" in ASCII.
CAPPED_CLAIM_LOCK = 0x63617073

#: Due jobs a capped claim looks at before giving up (the rest wait behind capped dealers).
CAPPED_CLAIM_WINDOW = 200

#: The window of finished jobs the p95 is measured over (the same as `JobReads.stats`).
P95_WINDOW = 1000

_SAFE = re.compile(r"^[A-Za-z0-9_/+-]+$")


class FleetQueue:
    """Mixin of `JobStore`: the capped claim path."""

    engine: Engine
    _one_statement: bool
    clock: Callable[[], datetime]

    _lease_picked: Callable[..., list[Job]]  # from JobWrites

    def _claim_capped(
        self,
        worker_id: str,
        oem: str | None,
        limit: int,
        lease_s: float,
        run_id: str | None,
        exclude_oems: Iterable[str],
        caps: Mapping[str, ConcurrencyCaps],
        now: datetime,
        prefer_redaction_sensitive: bool = False,
    ) -> list[Job]:
        """Count what is leased, then pick due jobs that keep every cap, in one transaction."""
        candidates = (
            claimable_select(
                (jobs.c.job_id, jobs.c.state, jobs.c.version, jobs.c.oem, jobs.c.dealer_id),
                oem=oem,
                exclude_oems=exclude_oems,
                prefer_redaction_sensitive=prefer_redaction_sensitive,
                now=now,
            )
            .limit(CAPPED_CLAIM_WINDOW)
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            if self._one_statement:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CAPPED_CLAIM_LOCK})
            per_oem, per_dealer = _leased_counts(conn, list(caps))
            picked = []
            for job_id, state, version, job_oem, dealer in conn.execute(candidates):
                cap = caps.get(job_oem)
                if cap is not None:
                    if cap.max_sessions is not None and per_oem[job_oem] >= cap.max_sessions:
                        continue
                    held = per_dealer[(job_oem, dealer)]
                    if cap.max_per_dealer is not None and held >= cap.max_per_dealer:
                        continue
                    per_oem[job_oem] += 1
                    per_dealer[(job_oem, dealer)] += 1
                picked.append((job_id, state, version))
                if len(picked) == limit:
                    break
            return self._lease_picked(conn, picked, worker_id, lease_s, run_id, now)

    def leased_by_dealer(self, oem: str) -> dict[str, int]:
        """Jobs leased now per dealer of one OEM (what the per-dealer cap limits)."""
        with self.engine.connect() as conn:
            _, per_dealer = _leased_counts(conn, [oem])
        return {dealer: n for (_, dealer), n in per_dealer.items() if n}

    def due_queue(self, oem: str, now: datetime | None = None) -> list[tuple[str, datetime | None]]:
        """The OEM's due jobs in claim order with their due dates (UTC): the queue positions
        `jobs_at_risk` reads."""
        now = now or self.clock()
        pick = claimable_select(
            (jobs.c.job_id, jobs.c.due_at),
            oem=oem,
            exclude_oems=(),
            prefer_redaction_sensitive=False,
            now=now,
        )
        with self.engine.connect() as conn:
            return [(job_id, _aware(due)) for job_id, due in conn.execute(pick)]

    def at_risk(
        self, oem: str, *, p95_s: float, concurrency: int, now: datetime | None = None
    ) -> list[str]:
        """Ids of the OEM's due jobs expected to finish after their due date, in claim order."""
        now = now or self.clock()
        return jobs_at_risk(self.due_queue(oem, now), now=now, p95_s=p95_s, concurrency=concurrency)

    def desired_workers_now(self, query: str) -> int:
        """Run a `desired_workers_query` as KEDA's scaler would: one integer."""
        with self.engine.connect() as conn:
            return int(conn.execute(text(query)).scalar_one())


def _leased_counts(
    conn: Connection, oems: list[str]
) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    q = (
        select(jobs.c.oem, jobs.c.dealer_id, func.count())
        .where(jobs.c.state.in_([s.value for s in LEASED_STATES]), jobs.c.oem.in_(oems))
        .group_by(jobs.c.oem, jobs.c.dealer_id)
    )
    per_oem: Counter[str] = Counter()
    per_dealer: Counter[tuple[str, str]] = Counter()
    for o, dealer, n in conn.execute(q):
        per_oem[o] += n
        per_dealer[(o, dealer)] += n
    return per_oem, per_dealer


def _literal(value: str) -> str:
    if not _SAFE.match(value):
        raise ValueError(f"{value!r} cannot go into the scaler's query")
    return f"'{value}'"


def desired_workers_query(
    oem: str, schedule: OemSchedule, policy: FleetPolicy, caps: ConcurrencyCaps
) -> str:
    """`domain.fleet.desired_workers` as one PostgreSQL statement returning one integer.

    Same inputs (due, in flight, nearest-rank p95 over the last finished jobs, seconds to the
    next business-hours start in the OEM's zone) and the same arithmetic in float8, so the two
    agree (a test holds them to it). Without a replica count it leaves out the step-up
    guardrail: the HPA's behaviour section applies that.
    """
    o, tz = _literal(oem), _literal(schedule.timezone)
    start = schedule.business_hours_start.strftime("%H:%M:%S")
    claimable = ", ".join(sorted(f"'{s.value}'" for s in CLAIMABLE_STATES))
    leased = ", ".join(sorted(f"'{s.value}'" for s in LEASED_STATES))
    useful = "w.work" if caps.max_sessions is None else f"LEAST(w.work, {caps.max_sessions})"
    local = f"(now() AT TIME ZONE {tz})"
    return f"""WITH q AS (
  SELECT
    (SELECT count(*) FROM jobs WHERE oem = {o} AND state IN ({claimable})
       AND next_attempt_at <= now()) AS due,
    (SELECT count(*) FROM jobs WHERE oem = {o} AND state IN ({leased})) AS in_flight,
    COALESCE((SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY d.duration_s)
       FROM (SELECT duration_s FROM jobs WHERE oem = {o} AND duration_s IS NOT NULL
             ORDER BY finished_at DESC LIMIT {P95_WINDOW}) d),
      {policy.default_p95_s!r})::float8 AS p95,
    EXTRACT(EPOCH FROM ((date_trunc('day', {local}) + time '{start}'
       + CASE WHEN {local}::time >= time '{start}' THEN interval '1 day'
         ELSE interval '0' END) AT TIME ZONE {tz} - now()))::float8 AS seconds_left
), w AS (SELECT due + in_flight AS work, p95, seconds_left FROM q)
SELECT CASE WHEN w.work = 0 THEN {policy.min_workers}
  ELSE GREATEST({policy.min_workers}, 1, LEAST({policy.max_workers},
    CEIL(LEAST(CEIL(w.work * w.p95 / GREATEST(w.seconds_left, w.p95)), {useful})::float8
         / {policy.contexts_per_worker})))::int END AS desired_workers
FROM w"""
