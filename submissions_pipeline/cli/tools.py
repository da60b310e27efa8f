"""Commands for adapter authors and release decisions: check-adapter, the benchmark, soaks,
the CRM contract."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from submissions_pipeline.cli.app import app
from submissions_pipeline.settings import load_settings

#: The case `check-adapter` fills when given none (it never submits it).
_SAMPLE_CASE = {
    "case_id": "CHECK-0001",
    "vin": "1HGCM82633A004352",
    "payload": {
        "repair_date": "2026-11-02",
        "mileage": 12345,
        "complaint": "Engine light on, rough idle at cold start",
        "cause": "Faulty ignition coil cylinder 2",
        "correction": "Replaced ignition coil, cleared codes",
        "labor_hours": 1.2,
        "part_number": "IGN-4471",
    },
}


def _check_case(oem: str, dealer: str, path: Path | None):  # type: ignore[no-untyped-def]
    from submissions_pipeline.domain import validate_case

    record = json.loads(path.read_text()) if path else dict(_SAMPLE_CASE)
    return validate_case({**record, "oem": oem, "dealer_id": record.get("dealer_id", dealer)})


@app.command("check-adapter")
def check_adapter_command(
    oem_arg: str | None = typer.Argument(None, metavar="OEM", help="The OEM to check."),
    oem: str | None = typer.Option(None, "--oem", help="The OEM to check (or as argument)."),
    dealer: str = typer.Option("D1001", help="Whose credentials log in."),
    case_file: Path | None = typer.Option(
        None, help="A CRM case (JSON) to fill in; default: a sample case."
    ),
    lookup_file: Path | None = typer.Option(
        None, help="A CRM case (JSON) the portal already holds, to look up."
    ),
    lookup_reference: str | None = typer.Option(
        None, help="The portal's reference of that case (for portals searched by reference)."
    ),
    out: Path | None = typer.Option(None, help="Screenshots folder; default HOME/check/OEM."),
    action_timeout_ms: float = typer.Option(
        10_000, help="How long to wait for one element before calling it missing."
    ),
) -> None:
    """Walk an OEM's adapter through its portal up to (never through) the submit click: login,
    search, every form step, the review page, then a lookup; print what was found per step and,
    for a missing element, the locator and the page's closest candidates."""
    import asyncio

    from submissions_pipeline.resource_sets import worker_dependencies
    from submissions_pipeline.runner.check import check_adapter

    key = oem or oem_arg
    if not key:
        raise typer.BadParameter("name the OEM (check-adapter OEM)")
    settings = load_settings()
    with worker_dependencies(settings, [key]) as (deps, browser):
        case = _check_case(key, dealer, case_file)
        lookup = _check_case(key, dealer, lookup_file) if lookup_file else None
        report = asyncio.run(
            check_adapter(
                deps.adapters[key],
                deps.base_url(key),
                deps.credentials.get(key, case.dealer_id),
                case,
                out or settings.home / "check" / key,
                browser=browser.batch_config().browser,
                lookup_case=lookup,
                lookup_reference=lookup_reference,
                action_timeout_ms=action_timeout_ms,
            )
        )
    for line in report.lines():
        typer.echo(line)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def bench(
    full: bool = typer.Option(
        False,
        "--full",
        help="The full matrix: every variant at caps 1-4 in both scenarios over 200 (CPU-bound) "
        "and 60 (latency-bound) jobs, memory over 1,000 jobs (2-2.5 hours on 2 cores).",
    ),
    only: list[str] | None = typer.Option(
        None,
        "--only",
        help="throughput, memory, queue or fleet; repeat for several (default: all but fleet, "
        "which runs with --only fleet or --full).",
    ),
    jobs: int | None = typer.Option(None, min=1, help="Jobs per CPU-bound run (20; full 200)."),
    latency_jobs: int | None = typer.Option(
        None, min=1, help="Jobs per latency-bound run (12; full 60)."
    ),
    memory_jobs: int | None = typer.Option(
        None, min=1, help="Jobs of the memory run (80; full 1,000); PSS every tenth."
    ),
    caps: str | None = typer.Option(None, help="Context caps for every scenario, e.g. 1,2,3,4."),
    variants: str | None = typer.Option(
        None,
        help="Only these variants, e.g. bare,runner (bare, evidence, runner, runner_no_video, "
        "pipeline, process_per_job).",
    ),
    claimers_as: str = typer.Option(
        "processes", help="Queue-mode claimers: processes or threads (one connection each)."
    ),
    fleet_workers: str | None = typer.Option(
        None, help="Fleet mode: worker process counts, e.g. 1,2,4 (default)."
    ),
    fleet_jobs: int | None = typer.Option(None, min=1, help="Fleet mode: jobs per run (24)."),
    fleet_search_latency: float | None = typer.Option(
        None, min=0, help="Fleet mode: the portal's VIN search seconds (5)."
    ),
    fleet_context_cap: int | None = typer.Option(
        None, min=1, help="Fleet mode: contexts per worker (default: the runner's)."
    ),
    out: Path | None = typer.Option(None, help="Output folder (default SUBMISSIONS_HOME/bench)."),
) -> None:
    """Benchmark against raw-Playwright baselines: throughput, memory, the queue, the fleet.

    Prints the tables and the targets (met or missed); writes JSON, PNG and markdown.

    The newest results are also `latest.*` in the output folder; bench/README.md explains them.
    """
    try:
        from bench.fleet_bench import with_fleet_options
        from bench.harness import default_pg_url, plan_for, run_bench
    except ImportError as exc:  # bench/ lives beside the package, in the repository
        typer.echo(f"the benchmark needs the repository checkout (bench/): {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        plan = plan_for(
            full=full,
            jobs=jobs,
            latency_jobs=latency_jobs,
            memory_jobs=memory_jobs,
            caps=[int(c) for c in caps.split(",")] if caps else None,
            variants=variants.split(",") if variants else None,
            parts=only,
            claimers_as=claimers_as,
        )
        plan = with_fleet_options(
            plan,
            workers=[int(w) for w in fleet_workers.split(",")] if fleet_workers else None,
            jobs=fleet_jobs,
            search_latency_s=fleet_search_latency,
            context_cap=fleet_context_cap,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    settings = load_settings()
    run_bench(plan, out or settings.home / "bench", default_pg_url(settings), echo=typer.echo)


@app.command()
def soak(
    jobs: int = typer.Option(1000, help="Cases fed through the pipeline."),
    context_cap: int = typer.Option(3, help="Contexts per worker."),
    retry_time_scale: float = typer.Option(0.005, help="Retry delays scaled down by this."),
    out: Path = typer.Option(Path("var/soak"), help="Report folder (report.json, chart.png)."),
    daemon: bool = typer.Option(
        False, "--daemon", help="The scheduler soak: the `make up` stack under the daemon."
    ),
    minutes: float = typer.Option(60, help="With --daemon: how long cases arrive and chaos."),
    db: str = typer.Option(
        "sqlite", help="sqlite, or postgres: the fleet soak (worker processes, killed)."
    ),
    workers: int = typer.Option(3, help="With --db postgres: worker processes kept running."),
    kill_every_s: float = typer.Option(120, help="With --db postgres: a worker killed this often."),
) -> None:
    """Soak the real pipeline against faulty sandbox portals and judge it by the release bar.

    With --daemon, soak the scheduler instead: schedules and sensors accelerated, cases arriving
    continuously, run workers killed, connections dropped, the daemon restarted.
    """
    if daemon:
        from bench.daemon_soak import DaemonSoakConfig, run_daemon_soak

        result = run_daemon_soak(
            DaemonSoakConfig(minutes=minutes, out_dir=out.parent / "daemon-soak"), echo=typer.echo
        )
        raise typer.Exit(0 if result.passed else 1)
    if db == "postgres":
        from bench.fleet_soak import FleetSoakConfig, run_fleet_soak

        fleet_report = run_fleet_soak(
            FleetSoakConfig(
                jobs=jobs,
                context_cap=context_cap,
                retry_time_scale=retry_time_scale,
                workers=workers,
                kill_every_s=kill_every_s,
                pg_url=load_settings().postgres_url,
                out_dir=out.parent / "fleet-soak",
            ),
            echo=typer.echo,
        )
        raise typer.Exit(0 if fleet_report.passed else 1)
    from bench.soak import SoakConfig, run_soak

    report = run_soak(
        SoakConfig(
            jobs=jobs, context_cap=context_cap, retry_time_scale=retry_time_scale, out_dir=out
        ),
        echo=typer.echo,
    )
    raise typer.Exit(0 if report.passed else 1)


@app.command()
def contract(
    markdown: bool = typer.Option(False, "--markdown", help="The human-readable tables."),
    check: bool = typer.Option(
        False, "--check", help="Exit 1 when the models differ from the published version."
    ),
) -> None:
    """Print the CRM field contract (fields, statuses, reason codes, failure object)."""
    from submissions_pipeline.crm import contract as crm_contract

    doc = crm_contract.contract()
    typer.echo(crm_contract.render_markdown(doc) if markdown else crm_contract.render_json(doc))
    if check:
        problems = crm_contract.drift(doc, crm_contract.published(doc["version"]))
        for problem in problems:
            typer.echo(f"changed without a version bump: {problem}", err=True)
        raise typer.Exit(1 if problems else 0)
