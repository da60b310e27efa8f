"""The benchmark's targets: each one met, missed, or not measured in a run, with its reason."""

from __future__ import annotations

from bench.report import SCENARIO_LABELS, BenchReport, TargetResult


def _ratio_target(
    report: BenchReport,
    name: str,
    variant: str,
    base: str,
    wanted: float,
    scenario: str = "cpu",
    min_cap: int = 2,
) -> TargetResult:
    # From cap 2 up: the targets name cap 2; cap 1 is where CPU per step is measured.
    caps = sorted({r.cap for r in report.throughput if r.scenario == scenario and r.cap >= min_cap})
    pairs = []
    for cap in caps:
        r = report.find(scenario, variant, cap)
        ratio = r.ratio_to.get(base) if r else None
        if ratio is not None:
            pairs.append((cap, ratio))
    wanted_text = f">= {wanted:.2f} x {base} at the same cap ({SCENARIO_LABELS[scenario]})"
    if not pairs:
        pending = [r.note for r in report.throughput if r.variant == variant and r.note]
        return TargetResult(
            name=name,
            wanted=wanted_text,
            measured="-",
            met=None,
            note=pending[0] if pending else "",
        )
    parts = []
    for cap, x in pairs:
        r, b = report.find(scenario, variant, cap), report.find(scenario, base, cap)
        cpu = (
            f" (CPU s/job {b.cpu_s_per_job:.2f} vs {r.cpu_s_per_job:.2f})"
            if r and b and r.cpu_s_per_job and b.cpu_s_per_job
            else ""
        )
        parts.append(f"cap {cap}: {x:.2f}x{cpu}")
    measured = ", ".join(parts)
    return TargetResult(
        name=name, wanted=wanted_text, measured=measured, met=all(x >= wanted for _, x in pairs)
    )


def evaluate_targets(report: BenchReport) -> list[TargetResult]:
    """The benchmark's targets against this run's numbers."""
    targets = [
        _ratio_target(report, "runner vs bare", "runner", "bare", 1.1),
        _ratio_target(report, "runner vs evidence-matched", "runner", "evidence", 1.0),
        _ratio_target(report, "runner vs bare, heavy pages", "runner", "bare", 1.2, "heavy"),
    ]
    pipeline = _ratio_target(report, "full pipeline vs bare", "pipeline", "bare", 0.9)
    n = max((r.jobs for r in report.throughput if r.variant == "pipeline"), default=0)
    if pipeline.met is not None and n < 200:
        pipeline.note = f"measured over {n} jobs; the target names 200 (run --full)"
    targets.append(pipeline)

    lat1 = report.find("latency", "runner", 1)
    lat4 = report.find("latency", "runner", 4)
    if lat1 and lat4 and lat1.jobs_per_s and lat4.jobs_per_s:
        x = lat4.jobs_per_s / lat1.jobs_per_s
        b1, b4 = report.find("latency", "bare", 1), report.find("latency", "bare", 4)
        bare = (
            f"; bare: {b4.jobs_per_s / b1.jobs_per_s:.2f}x"
            if b1 and b4 and b1.jobs_per_s and b4.jobs_per_s
            else ""
        )
        targets.append(
            TargetResult(
                name="latency-bound scaling",
                wanted="runner at cap 4 >= 2.5 x cap 1 (search 2 s)",
                measured=f"{x:.2f}x ({lat1.jobs_per_s:.2f} -> {lat4.jobs_per_s:.2f} jobs/s{bare})",
                met=x >= 2.5,
            )
        )
    else:
        targets.append(
            TargetResult(
                name="latency-bound scaling",
                wanted="runner at cap 4 >= 2.5 x cap 1 (search 2 s)",
                measured="-",
                met=None,
            )
        )

    targets.append(_budget_target(report))
    targets.append(_pss_target(report))
    targets.append(_memory_target(report))
    targets.append(_queue_target(report))
    targets.append(_fleet_target(report))
    return targets


def _budget_target(report: BenchReport) -> TargetResult:
    """The runner's per-step and end-to-end budgets in the latency-bound scenario."""
    wanted = "every step p95 <= 8 s and job p95 <= 60 s (runner, latency-bound)"
    rows = [r for r in report.throughput if r.scenario == "latency" and r.variant == "runner"]
    rows = [r for r in rows if r.status == "ok" and r.step_p95_s and r.p95_job_s is not None]
    if not rows:
        return TargetResult(name="step budgets", wanted=wanted, measured="-", met=None)
    worst = max(rows, key=lambda r: max(r.step_p95_s.values()))
    step, p95 = max(worst.step_p95_s.items(), key=lambda kv: kv[1])
    job = max(r.p95_job_s or 0.0 for r in rows)
    return TargetResult(
        name="step budgets",
        wanted=wanted,
        measured=f"slowest step p95 {p95:.2f} s ({step}, cap {worst.cap}); job p95 {job:.2f} s",
        met=p95 <= 8.0 and job <= 60.0,
    )


def _fleet_target(report: BenchReport) -> TargetResult:
    """Two worker processes against one on a latency-bound portal: waiting on the portal, not
    on CPU, is what a second worker (its own browser) should overlap. W=4 is shown beside it:
    on 2 cores it is where CPU flattens the curve."""
    wanted = "W=2 >= 1.6 x W=1 jobs/s (latency-bound portal), every job settled, 0 duplicates"
    runs = {r.workers: r for r in report.fleet}
    one, two = runs.get(1), runs.get(2)
    if not one or not two or two.scaling is None:
        return TargetResult(
            name="fleet scaling", wanted=wanted, measured="-", met=None, note=report.fleet_status
        )
    extra = "".join(
        f"; W={w}: {r.scaling:.2f}x"
        for w, r in sorted(runs.items())
        if w > 2 and r.scaling is not None
    )
    wrong = [r.workers for r in report.fleet if not r.correct]
    note = f"incorrect run(s) at W={wrong}: see settled, dup, missing" if wrong else ""
    return TargetResult(
        name="fleet scaling",
        wanted=wanted,
        measured=f"{two.scaling:.2f}x ({one.jobs_per_s:.3f} -> {two.jobs_per_s:.3f} jobs/s{extra})",
        met=two.scaling >= 1.6 and not wrong,
        note=note,
    )


def _pss_target(report: BenchReport) -> TargetResult:
    """Process-per-job's PSS per concurrent job over what one more context costs.

    A job in its own browser carries a whole browser (peak / cap). A job as a context shares
    the browser, GPU and utility processes that are there anyway, so what it costs is its
    share of the tree above the idle browser: (peak - idle) / cap (a measured ~75 MB per
    context). Peak / cap for contexts is shown beside it.
    """
    wanted = ">= 1.5 x the PSS per concurrent job of contexts (bare, same cap)"
    best = None
    for scenario in ("cpu", "latency"):
        for cap in sorted({r.cap for r in report.throughput}, reverse=True):
            ppj = report.find(scenario, "process_per_job", cap)
            ctx = report.find(scenario, "bare", cap)
            if ppj and ctx and ppj.peak_pss_mb and ctx.peak_pss_mb and best is None:
                best = (scenario, cap, ppj.peak_pss_mb / cap, ctx.peak_pss_mb)
    if best is None:
        return TargetResult(name="process-per-job memory", wanted=wanted, measured="-", met=None)
    scenario, cap, p, ctx_peak = best
    idle = report.idle_browser_pss_mb
    if idle is not None and 0 < idle < ctx_peak:
        c = (ctx_peak - idle) / cap
        how = f"contexts: ({ctx_peak:.0f} - idle browser {idle:.0f}) / {cap}; peak/cap "
        how += f"{ctx_peak / cap:.0f} MB, {p / (ctx_peak / cap):.2f}x"
    else:
        c = ctx_peak / cap
        how = "contexts: peak / cap (idle browser not measured)"
    note = "at cap 1 both run one browser at a time: compare at cap >= 2" if cap == 1 else ""
    return TargetResult(
        name="process-per-job memory",
        wanted=wanted,
        measured=f"{p / c:.2f}x ({p:.0f} vs {c:.0f} MB per concurrent job, cap {cap}, "
        f"{SCENARIO_LABELS[scenario]}; {how})",
        met=p / c >= 1.5,
        note=note,
    )


def _memory_target(report: BenchReport) -> TargetResult:
    m = report.memory
    wanted = "PSS grows < 5 % from job 100 to job 1,000 (window peaks)"
    if m is None or m.growth_pct is None:
        return TargetResult(
            name="memory stays flat",
            wanted=wanted,
            measured="-",
            met=None,
            note=report.memory_status,
        )
    first = next(x for x in m.marks if x.window_peak_mb)
    last = [x for x in m.marks if x.window_peak_mb][-1]
    note = "" if m.jobs >= 1000 else f"quick mode: {m.jobs} jobs (run --full for 1,000)"
    return TargetResult(
        name="memory stays flat",
        wanted=wanted,
        measured=f"{m.growth_pct:+.1f} % (job {first.jobs}: {first.window_peak_mb:.0f} MB, "
        f"job {last.jobs}: {last.window_peak_mb:.0f} MB; {m.browser_launches} browser launches)",
        met=m.growth_pct < 5,
        note=note,
    )


def _queue_target(report: BenchReport) -> TargetResult:
    wanted = "store >= 0.5 x raw-SQL floor at 16 claimers (job lifecycle)"
    runs = {(q.impl, q.workload, q.claimers): q for q in report.queue}
    store, raw = runs.get(("store", "lifecycle", 16)), runs.get(("raw", "lifecycle", 16))
    if not store or not raw or not raw.jobs_per_s:
        return TargetResult(
            name="queue vs raw SQL", wanted=wanted, measured="-", met=None, note=report.queue_status
        )
    x = store.jobs_per_s / raw.jobs_per_s
    pair = (
        runs.get(("store", "claim_complete", 16)),
        runs.get(("raw", "claim_complete", 16)),
    )
    extra = (
        f"; claim+complete: {pair[0].jobs_per_s / pair[1].jobs_per_s:.2f}x"
        if pair[0] and pair[1] and pair[1].jobs_per_s
        else ""
    )
    return TargetResult(
        name="queue vs raw SQL",
        wanted=wanted,
        measured=f"{x:.2f}x ({store.jobs_per_s:.0f} vs {raw.jobs_per_s:.0f} jobs/s{extra})",
        met=x >= 0.5,
    )
