"""Fleet mode end to end at tiny sizes: real `submissions worker` processes, real Chromium, the
sandbox portal in its own process, a throwaway PostgreSQL database per worker count.

Timings at this size mean nothing and are not asserted; what is specified is that every job
ends settled, the portal holds each case exactly once, every figure is filled in, and the
report carries the fleet table and its target. Fleet mode stays out of the quick default.
"""

from __future__ import annotations

import json

import pytest

from bench.fleet_bench import with_fleet_options
from bench.harness import full_plan, plan_for, quick_plan, run_bench

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.timeout(600)]


def test_fleet_mode_runs_only_when_asked():
    assert "fleet" not in quick_plan().parts
    assert "fleet" in full_plan().parts
    plan = with_fleet_options(
        plan_for(parts=["fleet"]), workers=[2, 1, 2], jobs=4, search_latency_s=0.5
    )
    assert (plan.parts, plan.fleet_workers, plan.fleet_jobs) == (["fleet"], [1, 2], 4)
    with pytest.raises(ValueError):
        with_fleet_options(plan, workers=[0])


def test_one_and_two_workers_settle_every_job_once_and_fill_the_fleet_table(tmp_path, pg_admin_url):
    plan = with_fleet_options(
        plan_for(parts=["fleet"]), workers=[1, 2], jobs=4, search_latency_s=0.5
    )
    plan.pss_period_s = 0.2
    lines: list[str] = []
    report, json_path, _ = run_bench(plan, tmp_path, pg_admin_url, echo=lines.append)

    assert report.fleet_status == "ok"
    assert [r.workers for r in report.fleet] == [1, 2]
    for r in report.fleet:
        assert r.status == "ok", r.note
        assert (r.settled, r.ok, r.ledger_entries) == (4, 4, 4)
        assert (r.duplicates, r.missing) == (0, 0)
        assert r.correct
        assert r.contexts_per_worker >= 1
        assert 1 <= len(r.jobs_by_worker) <= r.workers
        assert sum(r.jobs_by_worker.values()) >= 4
        for figure in (
            r.wall_s,
            r.jobs_per_s,
            r.jobs_per_hour,
            r.predicted_jobs_per_hour,
            r.mean_job_s,
            r.p50_job_s,
            r.p95_job_s,
            r.cpu_s_per_job,
            r.peak_pss_mb,
            r.scaling,
        ):
            assert figure is not None and figure > 0
    assert report.fleet[0].scaling == 1.0
    # Nothing else was asked for, so nothing else ran.
    assert not report.throughput and not report.queue and report.memory is None

    target = next(t for t in report.targets if t.name == "fleet scaling")
    assert target.met is not None and target.measured.endswith("jobs/s)")

    saved = json.loads((tmp_path / "latest.json").read_text())
    assert [r["workers"] for r in saved["fleet"]] == [1, 2]
    assert saved == json.loads(json_path.read_text())
    table = (tmp_path / "latest.md").read_text()
    assert "Fleet mode" in table and "| x W=1 |" in table
    assert any("fleet   W=2" in line for line in lines)
