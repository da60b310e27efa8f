"""The benchmark's results, its targets (met or missed) and the tables people read."""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from bench.fleet_models import FleetRun
from bench.measures import STEP_ORDER, VariantRun
from submissions_pipeline.domain.stats import percentile

#: Variants in table order; the first two are the raw-Playwright baselines.
VARIANTS = ("bare", "evidence", "runner", "runner_no_video", "pipeline", "process_per_job")
BASELINES = ("bare", "evidence")
VARIANT_LABELS = {
    "bare": "bare (raw Playwright)",
    "evidence": "evidence-matched (raw)",
    "runner": "runner alone",
    "runner_no_video": "runner, video off (ablation)",
    "pipeline": "full pipeline (Dagster)",
    "process_per_job": "process-per-job (raw)",
}
SCENARIO_LABELS = {
    "cpu": "CPU-bound",
    "latency": "latency-bound (search 2 s)",
    "heavy": "heavy-pages (1.6 MB bundle, fonts, images, slow third party)",
}
STEP_SHORT = {
    "pre_submit_evidence": "pre_shot",
    "post_confirm_evidence": "post_shot",
    "evidence_upload": "upload",
}


class ThroughputResult(BaseModel):
    """One variant at one cap in one scenario, over the same N jobs as its neighbours."""

    scenario: str
    variant: str
    cap: int
    jobs: int
    status: Literal["ok", "pending", "failed"] = "ok"
    note: str = ""
    ok: int = 0
    ledger_entries: int = 0
    duplicates: int = 0
    wall_s: float | None = None
    jobs_per_s: float | None = None
    jobs_per_hour: float | None = None
    predicted_jobs_per_hour: float | None = Field(
        None, description="concurrency x 3600 / mean job seconds (the capacity formula)"
    )
    mean_job_s: float | None = None
    p50_job_s: float | None = None
    p95_job_s: float | None = None
    step_p95_s: dict[str, float] = Field(default_factory=dict)
    step_cpu_s: dict[str, float] = Field(
        default_factory=dict,
        description="mean CPU s per step per job (cap 1 only), with 'other' the job's CPU "
        "outside every step: claims, milestones, contexts, the driver's own work",
    )
    peak_pss_mb: float | None = None
    pss_per_job_mb: float | None = Field(None, description="peak PSS / concurrent jobs (cap)")
    browser_launches: int = 0
    cpu_s_per_job: float | None = Field(
        None, description="CPU s of the harness, driver and browsers (not the portal) per job"
    )
    portal_cpu_s_per_job: float | None = Field(None, description="the sandbox portal's CPU s/job")
    ratio_to: dict[str, float | None] = Field(
        default_factory=dict, description="jobs/s over each baseline's, same scenario and cap"
    )

    @classmethod
    def measured(
        cls,
        scenario: str,
        variant: str,
        cap: int,
        n: int,
        run: VariantRun,
        peak_pss_mb: float,
        ledger_entries: int,
        duplicates: int,
        portal_cpu_s: float | None = None,
    ) -> ThroughputResult:
        """Summarise a finished run: throughput over successful jobs, times, PSS."""
        ok = [j for j in run.jobs if j.ok]
        secs = [j.seconds for j in ok]
        mean = statistics.fmean(secs) if secs else None
        per_s = len(ok) / run.wall_s if run.wall_s > 0 else None
        steps = {}
        for step in STEP_ORDER:
            values = [j.steps[step] for j in ok if step in j.steps]
            if values:
                steps[step] = round(percentile(values, 95) or 0.0, 3)
        cpu_steps: dict[str, float] = {}
        with_cpu = [j for j in ok if j.step_cpu]
        if with_cpu:
            for step in sorted({k for j in with_cpu for k in j.step_cpu}):
                cpu_steps[step] = round(
                    sum(j.step_cpu.get(step, 0.0) for j in with_cpu) / len(with_cpu), 4
                )
            if run.cpu_s is not None:
                in_steps = sum(cpu_steps.values())
                cpu_steps["other"] = round(max(0.0, run.cpu_s / len(ok) - in_steps), 4)
        failed = [j.error for j in run.jobs if not j.ok and j.error]
        note = run.note
        if failed:
            note = f"{note}; {len(failed)} failed, e.g. {failed[0]}".strip("; ")
        return cls(
            scenario=scenario,
            variant=variant,
            cap=cap,
            jobs=n,
            status="ok" if ok else "failed",
            note=note,
            ok=len(ok),
            ledger_entries=ledger_entries,
            duplicates=duplicates,
            wall_s=round(run.wall_s, 3),
            jobs_per_s=round(per_s, 4) if per_s is not None else None,
            jobs_per_hour=round(per_s * 3600) if per_s is not None else None,
            predicted_jobs_per_hour=round(run.concurrency * 3600 / mean) if mean else None,
            mean_job_s=round(mean, 3) if mean is not None else None,
            p50_job_s=_round(percentile(secs, 50)),
            p95_job_s=_round(percentile(secs, 95)),
            step_p95_s=steps,
            step_cpu_s=cpu_steps,
            peak_pss_mb=round(peak_pss_mb, 1),
            pss_per_job_mb=round(peak_pss_mb / cap, 1),
            browser_launches=run.browser_launches,
            cpu_s_per_job=_round(run.cpu_s / len(ok)) if run.cpu_s is not None and ok else None,
            portal_cpu_s_per_job=_round(portal_cpu_s / len(ok))
            if portal_cpu_s is not None and ok
            else None,
        )


def _round(value: float | None, digits: int = 3) -> float | None:
    return round(value, digits) if value is not None else None


class MemoryMark(BaseModel):
    """The browser tree's PSS when the runner had stored the evidence of `jobs` jobs."""

    jobs: int
    seconds: float
    pss_mb: float = Field(description="PSS at that moment")
    window_peak_mb: float | None = Field(None, description="highest PSS since the last mark")
    processes: int


class MemoryResult(BaseModel):
    """Memory mode: N jobs through one runner batch, PSS every `every` jobs."""

    jobs: int
    every: int
    cap: int
    recycle_browser_after: int
    status: Literal["ok", "failed"] = "ok"
    note: str = ""
    ok: int = 0
    wall_s: float | None = None
    browser_launches: int = 0
    marks: list[MemoryMark] = Field(default_factory=list)

    @property
    def growth_pct(self) -> float | None:
        """Window-peak PSS growth from the first mark to the last, in percent."""
        peaks = [m.window_peak_mb for m in self.marks if m.window_peak_mb]
        if len(peaks) < 2:
            return None
        return (peaks[-1] - peaks[0]) / peaks[0] * 100


class QueueResult(BaseModel):
    """One queue-mode run: an implementation and workload at a number of claimers."""

    impl: Literal["store", "raw"]
    workload: Literal["lifecycle", "claim_complete"]
    claimers: int
    jobs: int
    wall_s: float
    jobs_per_s: float
    p50_claim_ms: float | None
    p95_claim_ms: float | None
    errors: list[str] = Field(default_factory=list)


class Machine(BaseModel):
    """Where the numbers came from."""

    hostname: str
    cpu_model: str
    cpus: int
    mem_total_gb: float
    os: str
    kernel: str
    python: str
    playwright: str
    chromium: str
    postgres: str | None = None
    load_avg_start: tuple[float, float, float]
    load_avg_end: tuple[float, float, float] | None = None


class TargetResult(BaseModel):
    """One of the benchmark's targets, met, missed, or not measured in this run."""

    name: str
    wanted: str
    measured: str
    met: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


class BenchReport(BaseModel):
    """Everything one `submissions bench` invocation measured."""

    mode: str
    started_at: datetime
    duration_s: float = 0.0
    machine: Machine
    plan: dict
    throughput: list[ThroughputResult] = Field(default_factory=list)
    memory: MemoryResult | None = None
    memory_status: str = "not run"
    queue: list[QueueResult] = Field(default_factory=list)
    queue_status: str = "not run"
    queue_claimers_as: str = "processes"
    fleet: list[FleetRun] = Field(default_factory=list)
    fleet_status: str = "not run"
    idle_browser_pss_mb: float | None = Field(
        None, description="PSS of one launched Chromium tree with no context open"
    )
    targets: list[TargetResult] = Field(default_factory=list)

    def find(self, scenario: str, variant: str, cap: int) -> ThroughputResult | None:
        """The successful result of one variant at one cap in one scenario, if measured."""
        for r in self.throughput:
            if (r.scenario, r.variant, r.cap) == (scenario, variant, cap) and r.status == "ok":
                return r
        return None

    def fill_ratios(self) -> None:
        """Each variant's jobs/s over each baseline's at the same scenario and cap."""
        for r in self.throughput:
            for base in BASELINES:
                b = self.find(r.scenario, base, r.cap)
                r.ratio_to[base] = (
                    round(r.jobs_per_s / b.jobs_per_s, 3)
                    if r.status == "ok" and b and r.jobs_per_s and b.jobs_per_s
                    else None
                )


# ------------------------------------------------------------------------ tables


def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _is_number(cell: str) -> bool:
    text = cell.rstrip("x%").replace(",", "")
    try:
        float(text)
    except ValueError:
        return cell == "-"
    return True


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table, numbers right-aligned, readable as plain text too."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    numeric = [bool(rows) and all(_is_number(r[i]) for r in rows) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + (":" if n else "-") for w, n in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    body = [
        "| "
        + " | ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(r, widths, numeric, strict=True)
        )
        + " |"
        for r in rows
    ]
    return "\n".join([line, rule, *body])


def throughput_table(report: BenchReport) -> str:
    """The main table: throughput, the formula's prediction, job time, PSS, ratios."""
    header = [
        "scenario / variant",
        "cap",
        "ok/N",
        "jobs/s",
        "jobs/h",
        "pred. jobs/h",
        "p50 s",
        "p95 s",
        "peak PSS MB",
        "PSS/job MB",
        "CPU s/job",
        "x bare",
        "x evidence",
    ]
    rows = []
    for r in _ordered(report.throughput):
        label = f"{SCENARIO_LABELS[r.scenario].split(' ')[0]} {VARIANT_LABELS[r.variant]}"
        if r.status != "ok":
            rows.append([label, str(r.cap), f"{r.ok}/{r.jobs}", r.status, *["-"] * 9])
            continue
        rows.append(
            [
                label,
                str(r.cap),
                f"{r.ok}/{r.jobs}",
                _f(r.jobs_per_s),
                _f(r.jobs_per_hour, "{:.0f}"),
                _f(r.predicted_jobs_per_hour, "{:.0f}"),
                _f(r.p50_job_s),
                _f(r.p95_job_s),
                _f(r.peak_pss_mb, "{:.0f}"),
                _f(r.pss_per_job_mb, "{:.0f}"),
                _f(r.cpu_s_per_job),
                _f(r.ratio_to.get("bare")),
                _f(r.ratio_to.get("evidence")),
            ]
        )
    return _table(header, rows)


def step_table(report: BenchReport) -> str:
    """p95 seconds per step, per run."""
    header = ["scenario / variant", "cap", *(STEP_SHORT.get(s, s) for s in STEP_ORDER)]
    rows = [
        [
            f"{SCENARIO_LABELS[r.scenario].split(' ')[0]} {VARIANT_LABELS[r.variant]}",
            str(r.cap),
            *(_f(r.step_p95_s.get(s)) for s in STEP_ORDER),
        ]
        for r in _ordered(report.throughput)
        if r.status == "ok"
    ]
    return _table(header, rows)


def step_cpu_table(report: BenchReport) -> str:
    """Mean CPU seconds per job by step at cap 1, and where the runner spends more than bare."""
    rows_of = [r for r in _ordered(report.throughput) if r.status == "ok" and r.step_cpu_s]
    if not rows_of:
        return "(no cap-1 run: CPU per step is measured at cap 1)"
    steps = [s for s in STEP_ORDER if any(s in r.step_cpu_s for r in rows_of)] + ["other"]
    header = ["scenario / variant", *(STEP_SHORT.get(s, s) for s in steps), "total"]
    rows = [
        [
            f"{SCENARIO_LABELS[r.scenario].split(' ')[0]} {VARIANT_LABELS[r.variant]}",
            *(_f(r.step_cpu_s.get(s), "{:.3f}") for s in steps),
            _f(sum(r.step_cpu_s.values()), "{:.3f}"),
        ]
        for r in rows_of
    ]
    text = _table(header, rows)
    offender = top_cpu_offender(report)
    if offender:
        text += f"\n\nTop offender (runner minus bare, CPU s per job): {offender}"
    own = top_cpu_offender(report, against="evidence")
    if own:
        text += (
            "\nThe runner's own cost (runner minus evidence-matched, the same evidence by "
            f"Playwright's API alone): {own}"
        )
    return text


def top_cpu_offender(report: BenchReport, against: str = "bare") -> str | None:
    """The step where the runner spends the most CPU beyond the `against` baseline at cap 1,
    and the whole job's difference (None unmeasured)."""
    for scenario in ("cpu", "heavy", "latency"):
        base, runner = report.find(scenario, against, 1), report.find(scenario, "runner", 1)
        if base and runner and base.step_cpu_s and runner.step_cpu_s:
            gaps = {
                s: runner.step_cpu_s.get(s, 0.0) - base.step_cpu_s.get(s, 0.0)
                for s in {*base.step_cpu_s, *runner.step_cpu_s}
            }
            step, gap = max(gaps.items(), key=lambda kv: kv[1])
            return (
                f"{step} {gap:+.3f} s, whole job {sum(gaps.values()):+.3f} s "
                f"({SCENARIO_LABELS[scenario].split(' ')[0]})"
            )
    return None


def memory_table(report: BenchReport) -> str:
    """PSS of the runner's browser tree along the memory run."""
    m = report.memory
    if m is None:
        return f"(memory mode: {report.memory_status})"
    rows = [
        [
            str(x.jobs),
            f"{x.seconds:.0f}",
            f"{x.pss_mb:.0f}" if x.processes else "relaunching",
            _f(x.window_peak_mb, "{:.0f}"),
            str(x.processes),
        ]
        for x in m.marks
    ]
    return _table(["jobs done", "at s", "PSS MB", "peak since last MB", "processes"], rows)


def queue_table(report: BenchReport) -> str:
    """Queue mode: store and raw floor side by side per workload and claimers."""
    if not report.queue:
        return f"(queue mode: {report.queue_status})"
    runs = {(q.impl, q.workload, q.claimers): q for q in report.queue}
    rows = []
    for workload in ("lifecycle", "claim_complete"):
        for n in sorted({q.claimers for q in report.queue}):
            s, r = runs.get(("store", workload, n)), runs.get(("raw", workload, n))
            if not s or not r:
                continue
            rows.append(
                [
                    workload,
                    str(n),
                    f"{s.jobs_per_s:.0f}",
                    f"{r.jobs_per_s:.0f}",
                    _f(s.jobs_per_s / r.jobs_per_s if r.jobs_per_s else None),
                    _f(s.p95_claim_ms, "{:.1f}"),
                    _f(r.p95_claim_ms, "{:.1f}"),
                ]
            )
    return _table(
        [
            "workload",
            "claimers",
            "store jobs/s",
            "raw jobs/s",
            "store/raw",
            "store p95 claim ms",
            "raw p95 claim ms",
        ],
        rows,
    )


def fleet_table(report: BenchReport) -> str:
    """Fleet mode: one row per worker count; correctness columns first, then the rates."""
    if not report.fleet:
        return f"(fleet mode: {report.fleet_status})"
    rows = []
    for r in sorted(report.fleet, key=lambda r: r.workers):
        rows.append(
            [
                str(r.workers),
                str(r.contexts_per_worker),
                f"{r.ok}/{r.jobs}",
                f"{r.settled}/{r.jobs}",
                str(r.duplicates),
                str(r.missing),
                _f(r.wall_s, "{:.1f}"),
                _f(r.jobs_per_s, "{:.3f}"),
                _f(r.jobs_per_hour, "{:.0f}"),
                _f(r.predicted_jobs_per_hour, "{:.0f}"),
                _f(r.p50_job_s),
                _f(r.p95_job_s),
                _f(r.cpu_s_per_job),
                _f(r.peak_pss_mb, "{:.0f}"),
                _f(r.scaling),
            ]
        )
    return _table(
        [
            "workers",
            "contexts",
            "ok/N",
            "settled",
            "dup",
            "missing",
            "wall s",
            "jobs/s",
            "jobs/h",
            "pred. jobs/h",
            "p50 s",
            "p95 s",
            "CPU s/job",
            "peak PSS MB",
            "x W=1",
        ],
        rows,
    )


def targets_table(report: BenchReport) -> str:
    """Each target with its verdict."""
    rows = [
        [t.verdict, t.name, t.wanted, t.measured + (f" ({t.note})" if t.note else "")]
        for t in report.targets
    ]
    return _table(["verdict", "target", "wanted", "measured"], rows)


def _fleet_title(report: BenchReport) -> str:
    latency = f"search {report.fleet[0].search_latency_s:g} s" if report.fleet else "latency-bound"
    return (
        f"Fleet mode (`submissions worker` processes on PostgreSQL, {latency}; wall = first "
        "claim to last job settled; pred. = workers x contexts x 3600 / mean job s):"
    )


def _ordered(results: list[ThroughputResult]) -> list[ThroughputResult]:
    order = {v: i for i, v in enumerate(VARIANTS)}
    scen = {"cpu": 0, "latency": 1}
    return sorted(results, key=lambda r: (scen.get(r.scenario, 9), r.cap, order[r.variant]))


def render(report: BenchReport) -> str:
    """The whole report as markdown: machine, tables, targets."""
    m = report.machine
    load = f"{m.load_avg_start[0]:.1f}" + (f" -> {m.load_avg_end[0]:.1f}" if m.load_avg_end else "")
    head = [
        f"Benchmark ({report.mode}) started {report.started_at:%Y-%m-%d %H:%M} UTC, "
        f"{report.duration_s / 60:.1f} min",
        f"Machine: {m.cpus} x {m.cpu_model}, {m.mem_total_gb:.0f} GB, {m.os}; load average {load};"
        f" Chromium {m.chromium}, Playwright {m.playwright}, Python {m.python}"
        + (f", PostgreSQL {m.postgres}" if m.postgres else ""),
    ]
    return "\n\n".join(
        [
            "\n".join(head),
            "Throughput (jobs/s over successful jobs; pred. = concurrency x 3600 / mean job s):",
            throughput_table(report),
            "p95 seconds per step:",
            step_table(report),
            "CPU seconds per job by step (cap 1, so steps do not share a browser):",
            step_cpu_table(report),
            "Memory mode (runner, PSS of the Chromium tree):",
            memory_table(report),
            f"Queue mode (PostgreSQL, claimers as {report.queue_claimers_as}):",
            queue_table(report),
            _fleet_title(report),
            fleet_table(report),
            "Targets:",
            targets_table(report),
        ]
    )
