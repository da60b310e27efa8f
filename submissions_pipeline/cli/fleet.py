"""Commands of the worker fleet: the disposable worker, the autoscaling plan, the KEDA query."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from datetime import UTC, datetime

import typer

from submissions_pipeline.cli.app import app
from submissions_pipeline.settings import load_settings

fleet = typer.Typer(help="The worker fleet: how many workers the backlog needs, and why.")
app.add_typer(fleet, name="fleet")


@app.command()
def worker(
    oem: str | None = typer.Option(None, help="Only this OEM's jobs (default: every OEM)."),
    context_cap: int | None = typer.Option(None, help="Concurrent browser contexts."),
    poll_s: float | None = typer.Option(None, help="Sleep between empty polls."),
    lease_s: float | None = typer.Option(None, help="Lease per claimed job."),
    port: int | None = typer.Option(None, help="Probe and metrics port (0: any free)."),
    drain_grace_s: float | None = typer.Option(None, help="SIGTERM: in-flight grace period."),
    memory_limit_mb: float | None = typer.Option(None, help="Browser tree PSS limit."),
    memory_check_s: float = typer.Option(5.0, help="How often the PSS is measured."),
    video: str | None = typer.Option(None, help="off | on-retry | retain-on-failure | on"),
    once: bool = typer.Option(False, help="Exit when a poll finds nothing due."),
) -> None:
    """A disposable fleet worker: one browser across polls, /healthz /readyz /metrics, reaps
    expired leases, pulls due jobs; SIGTERM drains it (exit 0). Scale out with more of them."""
    # Until the worker's loop takes SIGTERM over, it ends start-up at once and cleanly: nothing
    # is claimed and no browser runs yet (a pod scaled down while it starts is no crash). An
    # exception would not do: library code on the way may catch it.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    from submissions_pipeline.resource_sets import worker_dependencies
    from submissions_pipeline.runner.fleet_worker import FleetWorker, WorkerSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings()
    ws = WorkerSettings(
        poll_s=poll_s or settings.worker_poll_s,
        drain_grace_s=settings.worker_drain_grace_s if drain_grace_s is None else drain_grace_s,
        memory_limit_mb=memory_limit_mb or settings.worker_memory_limit_mb,
        memory_check_s=memory_check_s,
        stall_s=settings.worker_stall_s,
        host=settings.worker_host,
        port=settings.worker_port if port is None else port,
        once=once,
    )
    with worker_dependencies(settings, [oem] if oem else None) as (deps, browser):
        batch: dict = {"oem": oem, "context_cap": context_cap, "max_jobs": 10**9}
        if lease_s is not None:
            batch["lease_s"] = lease_s
        cfg = browser.batch_config(**batch)
        cfg.time_budget_s = 10.0**9
        if video is not None:
            cfg.evidence = cfg.evidence.model_copy(update={"video": video})
        summary = asyncio.run(FleetWorker(cfg, deps, ws).run())
    typer.echo(summary.model_dump_json())


@fleet.command("plan")
def fleet_plan(
    oem: str | None = typer.Option(None, help="Only this OEM."),
    current: int | None = typer.Option(None, help="Workers running now (step-up guardrail)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Workers each OEM's backlog needs now, by the autoscaling policy (`domain/fleet.py`)."""
    from submissions_pipeline.domain.fleet import (
        Backlog,
        desired_workers,
        seconds_until_business_hours,
    )
    from submissions_pipeline.oems import oem_registry
    from submissions_pipeline.store import JobStore

    settings = load_settings()
    registry = oem_registry(settings.adapters_dir)
    store = JobStore.from_url(settings.database_url)
    now = datetime.now(UTC)
    rows = []
    try:
        for key in [oem] if oem else registry.oem_keys():
            s = registry.settings(key)
            st = store.stats(oem=key)
            backlog = Backlog(
                due=st.due_now,
                in_flight=st.running,
                p95_s=st.p95_job_s,
                seconds_left=seconds_until_business_hours(
                    now, s.schedule.business_hours_start, s.schedule.timezone
                ),
                oem_cap=s.concurrency.max_sessions,
            )
            rows.append(
                {
                    "oem": key,
                    **backlog.model_dump(),
                    "p95_used_s": backlog.p95_s or s.fleet.default_p95_s,
                    "desired_workers": desired_workers(backlog, s.fleet, current),
                    **{f"policy_{k}": v for k, v in s.fleet.model_dump().items()},
                }
            )
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo("oem         due  in_flight  p95_s  hours_left  desired  (min-max)")
    for r in rows:
        typer.echo(
            f"{r['oem']:<10} {r['due']:>4}  {r['in_flight']:>9}  {r['p95_used_s']:>5.0f}  "
            f"{r['seconds_left'] / 3600:>10.1f}  {r['desired_workers']:>7}  "
            f"({r['policy_min_workers']}-{r['policy_max_workers']})"
        )


@fleet.command("keda-query")
def fleet_keda_query(oem: str = typer.Option(..., help="The OEM whose workers it scales.")) -> None:
    """The SQL KEDA's PostgreSQL scaler runs for this OEM (the policy, computed in SQL)."""
    from submissions_pipeline.oems import oem_registry
    from submissions_pipeline.store.fleet import desired_workers_query

    s = oem_registry(load_settings().adapters_dir).settings(oem)
    typer.echo(desired_workers_query(oem, s.schedule, s.fleet, s.concurrency))
