"""One benchmark invocation: the plan (quick or full), the runs, and the JSON, table and chart.

Every throughput run drives the same N jobs through the sandbox portal (served by a child
process), checks the portal's ledger (N submissions, no duplicate), and samples the PSS of the
Chromium trees this process started. Variants of a scenario and cap run back to back, so each
ratio compares runs made minutes apart on the same machine.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PositiveInt

from bench.baselines import BaselineSettings, run_baseline
from bench.cases import BENCH_OEM, bench_cases, dealer_logins
from bench.measures import VariantRun
from bench.pss import PssSampler, cpu_seconds_of, step_cpu_seconds
from bench.report import (
    VARIANTS,
    BenchReport,
    Machine,
    MemoryMark,
    MemoryResult,
    ThroughputResult,
    render,
)
from bench.sandbox_process import SandboxProcess
from bench.targets import evaluate_targets
from submissions_pipeline.settings import Settings, load_settings

Echo = Callable[[str], None]

#: Sandbox knobs per scenario: faults, pop-ups and latency off; the latency-bound one makes the
#: VIN search take 2 s (the slow step of real portals, shrunk).
SCENARIO_KNOBS: dict[str, dict[str, Any]] = {
    "cpu": {
        "error_rate": 0.0,
        "latency_ms": 0,
        "search_latency_s": 0.0,
        "popup_rate": 0.0,
        "drop_after_submit_rate": 0.0,
    },
    "latency": {
        "error_rate": 0.0,
        "latency_ms": 0,
        "search_latency_s": 2.0,
        "popup_rate": 0.0,
        "drop_after_submit_rate": 0.0,
    },
    # Pages that weigh what real portals weigh (sandbox/heavy.py): a 1.6 MB bundle that must
    # run first, a web font, two large images and a third-party script that answers in 2 s.
    "heavy": {
        "error_rate": 0.0,
        "latency_ms": 0,
        "search_latency_s": 0.0,
        "popup_rate": 0.0,
        "drop_after_submit_rate": 0.0,
        "heavy_pages": True,
        "third_party_delay_ms": 2000,
    },
}

Part = Literal["throughput", "memory", "queue", "fleet"]
PARTS: tuple[Part, ...] = ("throughput", "memory", "queue", "fleet")
#: What runs without --only: fleet mode starts browsers per worker and would push `make bench`
#: past 10 minutes, so it runs with --only fleet or --full.
QUICK_PARTS: tuple[Part, ...] = ("throughput", "memory", "queue")


class Cell(BaseModel):
    """Some variants at one cap in one scenario, each over the same number of fresh jobs."""

    scenario: Literal["cpu", "latency", "heavy"]
    cap: int = Field(ge=1, le=16)
    variants: list[str]
    jobs: int = Field(ge=1)


class BenchPlan(BaseModel):
    """What one invocation measures. `quick_plan` and `full_plan` are the two presets."""

    mode: str
    cells: list[Cell]
    memory_jobs: int = Field(ge=1)
    memory_every: int = Field(ge=1)
    memory_cap: int = 2
    memory_recycle_after: int | None = Field(
        None, description="Browser recycling of the memory run; None keeps the runner's default."
    )
    queue_claimers: list[int] = [1, 4, 16, 32]
    queue_lifecycle_jobs: int = 100
    queue_claim_complete_jobs: int = 300
    queue_claimers_as: Literal["threads", "processes"] = "processes"
    fleet_workers: list[PositiveInt] = Field([1, 2, 4], min_length=1)
    fleet_jobs: int = Field(24, ge=1)
    fleet_search_latency_s: float = Field(5.0, ge=0)
    fleet_context_cap: int | None = Field(None, ge=1, le=16, description="None: the runner's.")
    fleet_timeout_s: float = Field(900.0, gt=0, description="Per run, first enqueue to done.")
    parts: list[Part] = list(QUICK_PARTS)
    warmup_jobs: int = 3
    pss_period_s: float = 1.0


def quick_plan() -> BenchPlan:
    """About 9 minutes on a quiet 2-core machine (measured: 8 min 52 s before the latency-bound
    runs grew from 12 to 16 jobs, four full waves at cap 4).

    Every variant CPU-bound at cap 2; bare and process-per-job at cap 4 too (memory per
    concurrent job); the latency-bound scaling of bare and the runner at caps 1 and 4; memory
    over 80 jobs with the browser recycled every 30 so relaunches show (the full run keeps the
    runner's default of 200 over 1,000 jobs).
    """
    quick_variants = [v for v in VARIANTS if v != "runner_no_video"]
    return BenchPlan(
        mode="quick",
        cells=[
            Cell(scenario="cpu", cap=1, variants=["bare", "evidence", "runner"], jobs=15),
            Cell(scenario="cpu", cap=2, variants=quick_variants, jobs=20),
            Cell(scenario="cpu", cap=4, variants=["bare", "process_per_job"], jobs=20),
            Cell(scenario="latency", cap=1, variants=["bare", "runner"], jobs=16),
            Cell(scenario="latency", cap=4, variants=["bare", "runner"], jobs=16),
            Cell(scenario="heavy", cap=2, variants=["bare", "runner"], jobs=12),
        ],
        memory_jobs=80,
        memory_every=10,
        memory_recycle_after=30,
    )


def full_plan() -> BenchPlan:
    """The whole matrix: every variant at caps 1-4 in both scenarios (the video ablation
    CPU-bound only), memory over 1,000 jobs at the runner's defaults."""
    return BenchPlan(
        mode="full",
        cells=[
            Cell(
                scenario=scenario,
                cap=cap,
                variants=[v for v in VARIANTS if scenario == "cpu" or v != "runner_no_video"],
                jobs=jobs,
            )
            for scenario, jobs in (("cpu", 200), ("latency", 60))
            for cap in (1, 2, 3, 4)
        ]
        + [
            Cell(scenario="heavy", cap=cap, variants=["bare", "runner"], jobs=60)
            for cap in (1, 2, 3, 4)
        ],
        memory_jobs=1000,
        memory_every=100,
        queue_lifecycle_jobs=1000,
        queue_claim_complete_jobs=3000,
        parts=list(PARTS),
    )


def plan_for(
    *,
    full: bool = False,
    jobs: int | None = None,
    latency_jobs: int | None = None,
    memory_jobs: int | None = None,
    caps: list[int] | None = None,
    variants: list[str] | None = None,
    parts: list[str] | None = None,
    claimers_as: str | None = None,
) -> BenchPlan:
    """The quick or full preset with the command line's overrides applied."""
    plan = full_plan() if full else quick_plan()
    unknown = sorted(set(variants or []) - set(VARIANTS)) + sorted(set(parts or []) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown variant or part {unknown}; variants {VARIANTS}, parts {PARTS}")
    if caps:
        by_scenario: dict[str, Cell] = {}
        for cell in plan.cells:
            merged = by_scenario.setdefault(cell.scenario, cell.model_copy(deep=True))
            merged.variants = [v for v in VARIANTS if v in {*merged.variants, *cell.variants}]
        plan.cells = [
            cell.model_copy(update={"cap": cap})
            for cell in by_scenario.values()
            for cap in sorted(set(caps))
        ]
    for cell in plan.cells:
        if jobs and cell.scenario == "cpu":
            cell.jobs = jobs
        if latency_jobs and cell.scenario == "latency":
            cell.jobs = latency_jobs
        if variants:
            cell.variants = [v for v in cell.variants if v in variants]
    plan.cells = [c for c in plan.cells if c.variants]
    if memory_jobs:
        plan.memory_jobs = memory_jobs
        plan.memory_every = max(1, memory_jobs // 10)
    if parts:
        plan.parts = [p for p in PARTS if p in parts]
    if claimers_as:
        plan.queue_claimers_as = claimers_as  # type: ignore[assignment]
    return BenchPlan.model_validate(plan.model_dump())


# ------------------------------------------------------------------------ environment


def chromium_executable() -> str:
    """The browser every variant launches, baselines and runner alike (SUBMISSIONS_CHROMIUM,
    else the runner's default: the headless shell where it is installed)."""
    from submissions_pipeline.runner.config import default_chromium

    return load_settings().chromium or default_chromium()


def machine_info(executable: str) -> Machine:
    """CPU, memory, OS and versions of this machine, and which browser binary ran."""
    from submissions_pipeline.runner.config import browser_label

    cpu_model = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    os_name = platform.system()
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    try:
        chromium = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        chromium = "unknown"
    return Machine(
        hostname=socket.gethostname(),
        cpu_model=cpu_model,
        cpus=os.cpu_count() or 0,
        mem_total_gb=round(mem_kb / 1024 / 1024, 1),
        os=os_name,
        kernel=platform.release(),
        python=platform.python_version(),
        playwright=metadata.version("playwright"),
        chromium=f"{chromium.removeprefix('Chromium ').strip() or 'unknown'}, "
        f"{browser_label(executable)}",
        load_avg_start=os.getloadavg(),
    )


def default_pg_url(settings: Settings | None = None) -> str | None:
    """SUBMISSIONS_BENCH_PG_URL, else the test suite's SUBMISSIONS_TEST_PG_URL."""
    return (settings or load_settings()).bench_pg_url


# ------------------------------------------------------------------------ throughput


def _run_variant(
    variant: str,
    url: str,
    cases: list[dict[str, Any]],
    cap: int,
    scratch: Path,
    executable: str,
) -> VariantRun:
    from bench.variants import run_pipeline, run_runner
    from submissions_pipeline.runner.config import CHROMIUM_ARGS

    # CPU per step only at cap 1: with two jobs at once, one job's step pays for the other's.
    # The evidence-matched baseline too: the runner minus it is the runner's own bookkeeping.
    step_cpu = step_cpu_seconds if cap == 1 and variant in ("bare", "evidence", "runner") else None
    if variant in ("bare", "evidence", "process_per_job"):
        settings = BaselineSettings(
            executable_path=executable,
            args=list(CHROMIUM_ARGS),  # the runner's flags: same browser, same work
            cap=cap,
            evidence=variant == "evidence",
            browser_per_job=variant == "process_per_job",
            scratch=scratch,
            step_cpu=step_cpu,
        )
        return run_baseline(settings, url, cases, dealer_logins())
    if variant == "runner":
        return run_runner(url, cases, cap, scratch, executable, step_cpu=step_cpu)
    if variant == "runner_no_video":
        return run_runner(url, cases, cap, scratch, executable, video="off")
    if variant == "pipeline":
        return run_pipeline(url, cases, cap, scratch, executable)
    raise ValueError(f"unknown variant {variant!r}")


def measure_throughput(
    sandbox: SandboxProcess,
    scenario: str,
    variant: str,
    cap: int,
    n: int,
    scratch_root: Path,
    executable: str,
    pss_period_s: float,
) -> ThroughputResult:
    """One variant over N fresh jobs on a freshly reset portal, with PSS sampled throughout."""
    if variant == "pipeline":
        from bench.variants import pipeline_pending_reason

        reason = pipeline_pending_reason()
        if reason is not None:
            return ThroughputResult(
                scenario=scenario, variant=variant, cap=cap, jobs=n, status="pending", note=reason
            )
    sandbox.reset(**SCENARIO_KNOBS[scenario])
    tag = f"{scenario[:3]}{cap}{variant[:3]}{uuid.uuid4().hex[:6]}"
    cases = bench_cases(n, tag)
    scratch = scratch_root / tag
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        portal_cpu0 = cpu_seconds_of(sandbox.pid) if sandbox.pid else None
        with PssSampler(executable, pss_period_s) as sampler:
            run = _run_variant(
                variant, sandbox.base_url(BENCH_OEM), cases, cap, scratch, executable
            )
        portal_cpu1 = cpu_seconds_of(sandbox.pid) if sandbox.pid else None
        ledger = sandbox.ledger(BENCH_OEM)
        duplicates = sandbox.duplicates(BENCH_OEM)
        portal_cpu = (
            portal_cpu1 - portal_cpu0
            if portal_cpu0 is not None and portal_cpu1 is not None
            else None
        )
        return ThroughputResult.measured(
            scenario,
            variant,
            cap,
            n,
            run,
            sampler.peak_mb,
            len(ledger),
            len(duplicates),
            portal_cpu_s=portal_cpu,
        )
    except Exception as exc:  # one broken variant must not hide the others' numbers
        return ThroughputResult(
            scenario=scenario,
            variant=variant,
            cap=cap,
            jobs=n,
            status="failed",
            note=f"{type(exc).__name__}: {exc}"[:400],
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def measure_memory(
    sandbox: SandboxProcess, plan: BenchPlan, scratch_root: Path, executable: str, echo: Echo
) -> MemoryResult:
    """Memory mode: N jobs through one runner batch; PSS each time `every` more are stored."""
    from bench.variants import run_runner
    from submissions_pipeline.runner import BrowserSettings

    sandbox.reset(**SCENARIO_KNOBS["cpu"])
    cases = bench_cases(plan.memory_jobs, f"mem{uuid.uuid4().hex[:6]}")
    scratch = scratch_root / "memory"
    scratch.mkdir(parents=True, exist_ok=True)
    result = MemoryResult(
        jobs=plan.memory_jobs,
        every=plan.memory_every,
        cap=plan.memory_cap,
        recycle_browser_after=plan.memory_recycle_after or BrowserSettings().recycle_browser_after,
    )
    t0 = time.monotonic()
    last = [t0]
    try:
        with PssSampler(executable, plan.pss_period_s) as sampler:

            def on_stored(done: int) -> None:
                # Runs in the runner's store thread, right after the job's evidence is stored.
                if done % plan.memory_every:
                    return
                now = sampler.sample()
                mark = MemoryMark(
                    jobs=done,
                    seconds=round(now.at - t0, 1),
                    pss_mb=round(now.pss_mb, 1),
                    window_peak_mb=_round1(sampler.peak_between(last[0], now.at)),
                    processes=now.processes,
                )
                last[0] = now.at
                result.marks.append(mark)
                echo(
                    f"  memory: {done:>5} jobs  PSS {mark.pss_mb:6.0f} MB  "
                    f"peak since last {mark.window_peak_mb or 0:6.0f} MB  "
                    f"{mark.processes} processes"
                )

            run = run_runner(
                sandbox.base_url(BENCH_OEM),
                cases,
                plan.memory_cap,
                scratch,
                executable,
                on_evidence_stored=on_stored,
                recycle_browser_after=result.recycle_browser_after,
            )
        result.ok = sum(j.ok for j in run.jobs)
        result.wall_s = round(run.wall_s, 1)
        result.browser_launches = run.browser_launches
        result.note = run.note
    except Exception as exc:
        result.status = "failed"
        result.note = f"{type(exc).__name__}: {exc}"[:400]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _round1(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def measure_idle_browser(executable: str, settle_s: float = 2.0) -> float | None:
    """PSS of one Chromium tree launched as the variants launch it, with no context open.

    What every context-based variant pays once whatever its cap; the memory target subtracts
    it to get what one more concurrent job costs.
    """
    from playwright.sync_api import sync_playwright

    from bench.pss import tree_pss_mb
    from submissions_pipeline.runner.config import CHROMIUM_ARGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            time.sleep(settle_s)  # let the GPU, network and storage processes come up
            mb, processes = tree_pss_mb(executable)
        finally:
            browser.close()
    return round(mb, 1) if processes else None


def _warm_up(sandbox: SandboxProcess, n: int, scratch_root: Path, executable: str) -> None:
    # Cold page cache and first imports would otherwise land on whichever variant runs first.
    from submissions_pipeline.runner.config import CHROMIUM_ARGS

    sandbox.reset(**SCENARIO_KNOBS["cpu"])
    settings = BaselineSettings(executable, list(CHROMIUM_ARGS), cap=1, scratch=scratch_root)
    run_baseline(settings, sandbox.base_url(BENCH_OEM), bench_cases(n, "warmup"), dealer_logins())
    from bench.variants import pipeline_pending_reason

    pipeline_pending_reason()  # imports Dagster and the definitions once, outside every timing


# ------------------------------------------------------------------------ the invocation


def run_bench(
    plan: BenchPlan,
    out_dir: Path,
    pg_url: str | None = None,
    echo: Echo = print,
) -> tuple[BenchReport, Path, Path]:
    """Run the plan; write `<out>/bench-<time>.json|.png|.md` and `latest.*`; print the report.

    Returns the report and the JSON and PNG paths.
    """
    from bench.chart import write_chart
    from submissions_pipeline.runner.browser import ensure_video_support

    started = datetime.now(UTC)
    t0 = time.monotonic()
    executable = chromium_executable()
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch_root = out_dir / f"scratch-{uuid.uuid4().hex[:8]}"
    scratch_root.mkdir(parents=True)
    # Video needs Playwright's ffmpeg path set before any driver starts: the driver reads it once.
    ensure_video_support(load_settings().browsers_path)
    report = BenchReport(
        mode=plan.mode,
        started_at=started,
        machine=machine_info(executable),
        plan=plan.model_dump(),
        queue_claimers_as=plan.queue_claimers_as,
    )
    echo(f"benchmark ({plan.mode}) on {report.machine.cpus} CPUs, load {os.getloadavg()[0]:.1f}")
    try:
        if "throughput" in plan.parts or "memory" in plan.parts:
            with SandboxProcess([BENCH_OEM]) as sandbox:
                _warm_up(sandbox, plan.warmup_jobs, scratch_root, executable)
                report.idle_browser_pss_mb = measure_idle_browser(executable)
                echo(f"  idle browser (no context): PSS {report.idle_browser_pss_mb} MB")
                if "throughput" in plan.parts:
                    for cell in plan.cells:
                        for variant in cell.variants:
                            r = measure_throughput(
                                sandbox,
                                cell.scenario,
                                variant,
                                cell.cap,
                                cell.jobs,
                                scratch_root,
                                executable,
                                plan.pss_period_s,
                            )
                            report.throughput.append(r)
                            echo(_progress(r))
                if "memory" in plan.parts:
                    report.memory = measure_memory(sandbox, plan, scratch_root, executable, echo)
                    report.memory_status = report.memory.status + (
                        f": {report.memory.note}" if report.memory.note else ""
                    )
        if "queue" in plan.parts:
            _measure_queue(report, plan, pg_url, echo)
        if "fleet" in plan.parts:
            from bench.fleet_bench import measure_fleet

            measure_fleet(report, plan, pg_url, executable, scratch_root, echo)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
    report.fill_ratios()
    report.targets = evaluate_targets(report)
    report.machine.load_avg_end = os.getloadavg()
    report.duration_s = round(time.monotonic() - t0, 1)
    text = render(report)
    echo("")
    echo(text)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    json_path, png_path = out_dir / f"bench-{stamp}.json", out_dir / f"bench-{stamp}.png"
    json_path.write_text(report.model_dump_json(indent=2))
    (out_dir / f"bench-{stamp}.md").write_text(text + "\n")
    write_chart(report, png_path)
    for src, name in ((json_path, "latest.json"), (png_path, "latest.png")):
        shutil.copyfile(src, out_dir / name)
    (out_dir / "latest.md").write_text(text + "\n")
    echo(f"\nwrote {json_path} and {png_path} (also latest.json, latest.png, latest.md)")
    return report, json_path, png_path


def _measure_queue(report: BenchReport, plan: BenchPlan, pg_url: str | None, echo: Echo) -> None:
    if not pg_url:
        report.queue_status = "skipped: no PostgreSQL (set SUBMISSIONS_BENCH_PG_URL)"
        echo(f"queue mode {report.queue_status}")
        return
    from bench.job_queue import measure, server_version, temporary_database

    try:
        with temporary_database(pg_url) as url:
            report.machine.postgres = server_version(url)
            runs = measure(
                url,
                plan.queue_claimers,
                {
                    "lifecycle": plan.queue_lifecycle_jobs,
                    "claim_complete": plan.queue_claim_complete_jobs,
                },
                claimers_as=plan.queue_claimers_as,
                echo=echo,
            )
        report.queue = runs
        report.queue_status = "ok"
    except Exception as exc:  # PostgreSQL down must not discard the browser numbers
        report.queue_status = f"failed: {type(exc).__name__}: {exc}"[:400]
        echo(f"queue mode {report.queue_status}")


def _progress(r: ThroughputResult) -> str:
    head = f"  {r.scenario:<7} cap {r.cap}  {r.variant:<16}"
    if r.status != "ok":
        return f"{head} {r.status}: {r.note}"
    return (
        f"{head} {r.ok}/{r.jobs} ok  {r.jobs_per_s:.2f} jobs/s  p50 {r.p50_job_s:.2f} s  "
        f"p95 {r.p95_job_s:.2f} s  peak PSS {r.peak_pss_mb:.0f} MB  ledger {r.ledger_entries}"
        + (f"  DUPLICATES {r.duplicates}" if r.duplicates else "")
        + (f"  ({r.note})" if r.note and not r.note.startswith("stop:") else "")
    )
