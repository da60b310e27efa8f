"""At risk: a queued job whose expected finish (queue position x p95 / fleet concurrency after
now) passes its due date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from submissions_pipeline.domain.fleet import fleet_concurrency, jobs_at_risk

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def due_in(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


# queue (id, due), p95_s, concurrency, at risk, why
TABLE = [
    ([], 60, 1, [], "empty queue"),
    ([("a", None), ("b", None)], 60, 1, [], "no due dates: nothing at risk"),
    ([("a", due_in(1))], 60, 1, [], "finishes exactly at its due date: on time"),
    ([("a", due_in(0.99))], 60, 1, ["a"], "one second short"),
    ([("a", due_in(-5))], 60, 4, ["a"], "already overdue"),
    ([("a", None), ("b", None), ("c", due_in(2))], 60, 1, ["c"], "third in line, 3 min > 2"),
    ([("a", None), ("b", None), ("c", due_in(2))], 60, 2, [], "two contexts: 1.5 min"),
    ([("a", due_in(1)), ("b", due_in(1)), ("c", due_in(1))], 60, 1, ["b", "c"], "queue order"),
    ([("a", due_in(10)), ("b", due_in(10))], 600, 1, ["b"], "slow portal: 20 min for b"),
    ([(f"j{k}", due_in(30)) for k in range(1, 31)], 60, 1, [], "30 jobs in 30 min, one each"),
    ([(f"j{k}", due_in(30)) for k in range(1, 32)], 60, 1, ["j31"], "the 31st is late"),
]


@pytest.mark.parametrize(("queue", "p95", "concurrency", "expected", "why"), TABLE)
def test_a_job_is_at_risk_when_its_expected_finish_passes_its_due_date(
    queue, p95, concurrency, expected, why
):
    assert jobs_at_risk(queue, now=NOW, p95_s=p95, concurrency=concurrency) == expected, why


@pytest.mark.parametrize(("p95", "concurrency"), [(60, 0), (0, 1), (-1, 1)])
def test_a_meaningless_fleet_is_refused(p95, concurrency):
    with pytest.raises(ValueError):
        jobs_at_risk([("a", NOW)], now=NOW, p95_s=p95, concurrency=concurrency)


# workers, contexts per worker, OEM cap, concurrency
CONCURRENCY = [
    (2, 3, None, 6),
    (2, 3, 4, 4),
    (0, 3, None, 1),  # an idle fleet still finishes jobs one at a time once it scales up
    (0, 3, 2, 1),
    (5, 1, 10, 5),
]


@pytest.mark.parametrize(("workers", "per_worker", "cap", "expected"), CONCURRENCY)
def test_fleet_concurrency_is_its_contexts_within_the_oem_cap(workers, per_worker, cap, expected):
    assert fleet_concurrency(workers, per_worker, cap) == expected
