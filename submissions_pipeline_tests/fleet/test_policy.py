"""The autoscaling policy: desired workers from a backlog, its p95 and the time left."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from submissions_pipeline.domain.fleet import (
    Backlog,
    FleetPolicy,
    desired_workers,
    seconds_until_business_hours,
)

POLICY = FleetPolicy(min_workers=0, max_workers=10, contexts_per_worker=3, default_p95_s=60)
HOUR = 3600.0

# due, in_flight, p95_s, seconds_left, oem_cap, policy, current, expected, why
TABLE = [
    (0, 0, 30, 5 * HOUR, None, POLICY, None, 0, "nothing due: scale to zero"),
    (0, 0, 30, 5 * HOUR, None, POLICY.model_copy(update={"min_workers": 1}), None, 1, "floor"),
    (1, 0, 30, 5 * HOUR, None, POLICY, None, 1, "one job: one worker"),
    (0, 2, 30, 5 * HOUR, None, POLICY, None, 1, "only in flight: keep one"),
    (600, 0, 30, 5 * HOUR, None, POLICY, None, 1, "600 x 30 s fits in 5 h on one context"),
    (2000, 0, 30, 5 * HOUR, None, POLICY, None, 2, "needs 4 contexts: 2 workers"),
    (2000, 0, 90, 5 * HOUR, None, POLICY, None, 4, "slow portal: 10 contexts, 4 workers"),
    (2000, 0, None, 5 * HOUR, None, POLICY, None, 3, "no p95 yet: the default 60 s"),
    (50, 10, 30, 60, None, POLICY, None, 10, "past the deadline: every job in parallel, capped"),
    (5, 0, 30, 10, None, POLICY, None, 2, "less than one job time left: 5 contexts"),
    (50, 10, 30, 60, 4, POLICY, None, 2, "the OEM's session cap bounds useful contexts"),
    (5000, 0, 120, HOUR, None, POLICY, None, 10, "ceiling"),
    (5000, 0, 120, HOUR, None, POLICY.model_copy(update={"max_step_up": 2}), 3, 5, "step-up"),
    (5000, 0, 120, HOUR, None, POLICY.model_copy(update={"max_step_up": 2}), 8, 10, "near max"),
    (1, 0, 30, HOUR, None, POLICY.model_copy(update={"max_step_up": 2}), 6, 1, "down freely"),
    (9, 0, 30, 0, None, POLICY.model_copy(update={"contexts_per_worker": 1}), None, 9, "1 ctx"),
]


@pytest.mark.parametrize(
    ("due", "in_flight", "p95", "left", "cap", "policy", "current", "expected", "why"), TABLE
)
def test_desired_workers_follows_the_table(
    due, in_flight, p95, left, cap, policy, current, expected, why
):
    backlog = Backlog(due=due, in_flight=in_flight, p95_s=p95, seconds_left=left, oem_cap=cap)
    assert desired_workers(backlog, policy, current) == expected, why


def test_time_left_counts_to_the_next_business_hours_start_in_the_oems_zone():
    # 02:00 UTC is 03:00 in Berlin (winter): four hours to 07:00.
    night = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    assert seconds_until_business_hours(night, time(7), "Europe/Berlin") == 4 * HOUR
    # 08:00 in Berlin: today's start has passed, so tomorrow's (23 h).
    morning = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    assert seconds_until_business_hours(morning, time(7), "Europe/Berlin") == 23 * HOUR


def test_a_policy_with_its_floor_above_its_ceiling_is_refused():
    with pytest.raises(ValueError):
        FleetPolicy(min_workers=3, max_workers=2)


def test_the_dagster_planner_adds_workers_when_the_deadline_needs_them():
    from submissions_pipeline.assets.submission_runs import SubmissionRunConfig, plan_worker_count

    cfg = SubmissionRunConfig(workers=4, jobs_per_worker=100, time_budget_s=3600)
    # 120 due jobs of 60 s: batches alone say 2 workers; 2 contexts each finish in time.
    relaxed = plan_worker_count(120, cfg, p95_s=60, seconds_left=5 * HOUR, context_cap=2)
    assert relaxed == 2
    # Twenty minutes before business hours the policy needs ceil(120*60/1200)=6 contexts: 3.
    rushed = plan_worker_count(120, cfg, p95_s=60, seconds_left=1200, context_cap=2)
    assert rushed == 3
    assert plan_worker_count(0, cfg, p95_s=60, seconds_left=1200, context_cap=2) == 0


def test_fleet_plan_prints_the_policys_answer_for_the_queue(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from submissions_pipeline.settings import PROJECT_ROOT
    from submissions_pipeline.store import JobStore
    from submissions_pipeline_tests.factories import make_case

    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = JobStore.from_url(db)
    for n in range(1, 8):
        store.enqueue(make_case(n, oem="northwind"))
    store.dispose()
    env = {**os.environ, "SUBMISSIONS_DB_URL": db, "SUBMISSIONS_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "submissions_pipeline.cli", "fleet", "plan", "--json"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    plan = {row["oem"]: row for row in json.loads(out)}
    assert plan["northwind"]["due"] == 7 and plan["northwind"]["desired_workers"] >= 1
    assert plan["aurora"]["due"] == 0 and plan["aurora"]["desired_workers"] == 0
    row = plan["northwind"]
    backlog = Backlog(**{k: row[k] for k in Backlog.model_fields})
    policy = FleetPolicy(
        **{k.removeprefix("policy_"): v for k, v in row.items() if k.startswith("policy_")}
    )
    assert row["desired_workers"] == desired_workers(backlog, policy)
