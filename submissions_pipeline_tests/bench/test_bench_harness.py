"""The benchmark harness end to end at tiny N: real Chromium, the sandbox, PostgreSQL.

Numbers at this size mean nothing; what is specified is that one invocation drives every
variant through the same jobs without a duplicate submission, measures PSS, memory and the
queue, evaluates every target, and leaves the JSON, table and chart behind.
"""

from __future__ import annotations

import json

import pytest

from bench.harness import BenchPlan, Cell, plan_for, run_bench
from bench.report import VARIANTS, BenchReport
from bench.variants import pipeline_pending_reason

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.timeout(240)]

TARGETS = {
    "runner vs bare",
    "runner vs evidence-matched",
    "runner vs bare, heavy pages",
    "full pipeline vs bare",
    "step budgets",
    "latency-bound scaling",
    "process-per-job memory",
    "memory stays flat",
    "queue vs raw SQL",
    "fleet scaling",
}


def tiny_plan() -> BenchPlan:
    return BenchPlan(
        mode="smoke",
        cells=[
            Cell(
                scenario="cpu",
                cap=2,
                variants=[v for v in VARIANTS if v != "runner_no_video"],
                jobs=2,
            ),
            Cell(scenario="latency", cap=2, variants=["bare"], jobs=2),
            Cell(scenario="heavy", cap=1, variants=["bare", "evidence", "runner"], jobs=2),
        ],
        memory_jobs=4,
        memory_every=2,
        memory_cap=2,
        memory_recycle_after=2,
        queue_claimers=[1, 2],
        queue_lifecycle_jobs=8,
        queue_claim_complete_jobs=8,
        queue_claimers_as="processes",
        warmup_jobs=1,
        pss_period_s=0.2,
    )


def test_one_invocation_measures_every_variant_and_writes_json_table_and_chart(
    tmp_path, pg_admin_url
):
    lines: list[str] = []
    report, json_path, png_path = run_bench(tiny_plan(), tmp_path, pg_admin_url, echo=lines.append)

    pipeline_pending = pipeline_pending_reason()
    for r in report.throughput:
        if r.variant == "pipeline" and pipeline_pending:
            assert r.status == "pending" and r.note == pipeline_pending
            continue
        assert r.status == "ok", (r.variant, r.note)
        # Every job submitted exactly once, as the portal's own ledger shows.
        assert r.ok == r.jobs == r.ledger_entries == 2, r
        assert r.duplicates == 0
        assert r.jobs_per_s and r.jobs_per_s > 0
        assert r.predicted_jobs_per_hour and r.p95_job_s
        assert {"login", "search", "fill", "submit", "confirm"} <= set(r.step_p95_s)
        assert r.peak_pss_mb and r.peak_pss_mb > 50, "the Chromium tree was not measured"
    evidence = next(r for r in report.throughput if r.variant == "evidence")
    assert {"pre_submit_evidence", "post_confirm_evidence"} <= set(evidence.step_p95_s)
    bare = next(r for r in report.throughput if r.variant == "bare" and r.scenario == "cpu")
    assert bare.ratio_to["bare"] == 1.0
    latency = next(r for r in report.throughput if r.scenario == "latency")
    assert latency.step_p95_s["search"] >= 2.0, "the latency-bound search did not take 2 s"
    # At cap 1 every step's CPU is read, and the job's CPU outside its steps is 'other'.
    for variant in ("bare", "evidence", "runner"):
        heavy = report.find("heavy", variant, 1)
        assert heavy is not None and heavy.status == "ok", heavy
        assert {"login", "search", "fill", "submit", "other"} <= set(heavy.step_cpu_s), heavy
        assert all(v >= 0 for v in heavy.step_cpu_s.values())
        assert heavy.step_cpu_s["fill"] > 0
    assert not bare.step_cpu_s, "CPU per step is only read at cap 1"

    memory = report.memory
    assert memory is not None and memory.status == "ok", report.memory_status
    assert [m.jobs for m in memory.marks] == [2, 4]
    assert memory.browser_launches >= 2, "recycling after 2 jobs should relaunch the browser"

    assert report.queue_status == "ok"
    runs = {(q.impl, q.workload, q.claimers): q for q in report.queue}
    assert set(runs) == {
        (impl, workload, n)
        for impl in ("store", "raw")
        for workload in ("lifecycle", "claim_complete")
        for n in (1, 2)
    }
    assert all(q.jobs >= 8 and not q.errors and q.p95_claim_ms for q in runs.values())

    assert {t.name for t in report.targets} == TARGETS
    assert BenchReport.model_validate(json.loads(json_path.read_text())).throughput
    assert png_path.read_bytes().startswith(b"\x89PNG")
    table = (tmp_path / "latest.md").read_text()
    assert "Targets:" in table and "x bare" in table
    assert "CPU seconds per job by step" in table and "Top offender" in table
    assert "runner minus evidence-matched" in table
    assert any("wrote" in line for line in lines)


def test_command_line_overrides_shape_the_plan():
    plan = plan_for(full=True, jobs=50, caps=[2, 1], variants=["bare", "runner"])
    assert {(c.scenario, c.cap) for c in plan.cells} == {
        (s, cap) for s in ("cpu", "latency", "heavy") for cap in (1, 2)
    }
    assert all(c.variants == ["bare", "runner"] for c in plan.cells)
    assert all(c.jobs == 50 for c in plan.cells if c.scenario == "cpu")
    with pytest.raises(ValueError):
        plan_for(variants=["selenium"])
