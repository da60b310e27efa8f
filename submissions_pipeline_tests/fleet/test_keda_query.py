"""The KEDA scaler's query computes the autoscaling policy: on a real PostgreSQL holding the
project's schema and a known backlog, it returns what `desired_workers` returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from submissions_pipeline.domain.fleet import (
    Backlog,
    ConcurrencyCaps,
    FleetPolicy,
    desired_workers,
    seconds_until_business_hours,
)
from submissions_pipeline.domain.oem import OemSchedule
from submissions_pipeline.store.fleet import desired_workers_query
from submissions_pipeline_tests.factories import make_case

POLICY = FleetPolicy(min_workers=0, max_workers=8, contexts_per_worker=2, default_p95_s=45)

# due, in flight, finished job times, minutes to business hours, session cap, policy
BACKLOGS = [
    (0, 0, [], 300, None, POLICY),
    (0, 0, [], 300, None, POLICY.model_copy(update={"min_workers": 1})),
    (3, 0, [], 300, None, POLICY),
    (40, 2, [], 20, None, POLICY),
    (40, 2, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 25, None, POLICY),
    (120, 3, [30.5] * 18 + [400.0] * 2, 61, None, POLICY),
    (120, 3, [30.5] * 18 + [400.0] * 2, 61, 5, POLICY),
    (7, 1, [12.0, 95.0], -30, None, POLICY),  # hours started: tomorrow morning
    (400, 0, [60.0], 10, None, POLICY),  # ceiling
]

EXPECTED = [0, 1, 1, 1, 2, 7, 3, 1, 8]


def arrange(store, oem: str, due: int, in_flight: int, durations: list[float]) -> None:
    for n in range(1, due + in_flight + len(durations) + 1):
        store.enqueue(make_case(n, oem=oem, case_id=f"{oem}-{n}"))
    if in_flight:
        store.claim("elsewhere", oem=oem, limit=in_flight)
    if durations:
        done = store.claim("elsewhere", oem=oem, limit=len(durations))
        with store.engine.begin() as conn:
            for i, (job, d) in enumerate(zip(done, durations, strict=True)):
                conn.execute(
                    text(
                        "UPDATE jobs SET state = 'crm_updated', lease_owner = NULL, "
                        "duration_s = :d, finished_at = :f WHERE job_id = :j"
                    ),
                    {"d": d, "f": datetime.now(UTC) - timedelta(seconds=i), "j": job.job_id},
                )


@pytest.mark.parametrize("row", range(len(BACKLOGS)))
def test_the_keda_query_agrees_with_the_policy_function(pg_store, row):
    due, in_flight, durations, minutes, cap, policy = BACKLOGS[row]
    oem = f"fleet{row}"
    arrange(pg_store, oem, due, in_flight, durations)
    zone = "America/Detroit"
    start = (datetime.now(UTC) + timedelta(minutes=minutes)).astimezone(ZoneInfo(zone))
    schedule = OemSchedule(
        timezone=zone, business_hours_start=start.time().replace(second=0, microsecond=0)
    )
    caps = ConcurrencyCaps(max_sessions=cap)

    from_sql = pg_store.desired_workers_now(desired_workers_query(oem, schedule, policy, caps))

    stats = pg_store.stats(oem=oem)
    backlog = Backlog(
        due=stats.due_now,
        in_flight=stats.running,
        p95_s=stats.p95_job_s,
        seconds_left=seconds_until_business_hours(
            datetime.now(UTC), schedule.business_hours_start, schedule.timezone
        ),
        oem_cap=cap,
    )
    assert (backlog.due, backlog.in_flight) == (due, in_flight)
    assert from_sql == desired_workers(backlog, policy) == EXPECTED[row]
