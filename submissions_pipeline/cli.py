"""The `submissions` command: operate the pipeline outside the Dagster UI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from submissions_pipeline.crm import MIN_PER_OEM, EmbeddedCrm, seed_demo_cases
from submissions_pipeline.oems import OemConfigError
from submissions_pipeline.settings import SettingsError, load_settings
from submissions_pipeline.store import JobStore
from submissions_pipeline.store import migrate as migrations
from submissions_pipeline.store.engine import make_engine


class _App(typer.Typer):
    """The command group; a configuration error ends with its message, not a traceback."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        try:
            return super().__call__(*args, **kwargs)
        except (SettingsError, OemConfigError) as exc:
            typer.echo(f"configuration error: {exc}", err=True)
            raise SystemExit(2) from None


app = _App(help="Automated OEM portal submissions.", no_args_is_help=True)
db = typer.Typer(help="Inspect and author the database's migrations (Alembic).")
app.add_typer(db, name="db")


def _store() -> JobStore:
    return JobStore.from_url(load_settings().database_url)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (idempotent)."""
    settings = load_settings()
    JobStore.from_url(settings.database_url).dispose()
    typer.echo(f"database ready at {migrations.head()}: {settings.database_url_for_display}")


@db.command("current")
def db_current() -> None:
    """The revision the database is at, and the newest one the code has."""
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        at = migrations.current(engine)
    finally:
        engine.dispose()
    newest = migrations.head()
    typer.echo(f"database: {settings.database_url_for_display}")
    typer.echo(f"at: {', '.join(at) or 'nothing (never migrated)'}; newest: {newest}")
    if at != [newest]:
        typer.echo("run `submissions migrate` (or `submissions db upgrade`) to bring it up")


@db.command("history")
def db_history() -> None:
    """Every migration, oldest first."""
    for rev, down, doc in migrations.history():
        typer.echo(f"{down or '-':>5} -> {rev}  {doc}")


@db.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        migrations.upgrade(engine, revision)
        typer.echo(f"at: {', '.join(migrations.current(engine))}")
    finally:
        engine.dispose()


@db.command("revision")
def db_revision(
    message: str = typer.Option(..., "-m", "--message", help="What the migration does."),
    autogenerate: bool = typer.Option(
        False, help="Fill it from the difference between the database and the code's tables."
    ),
) -> None:
    """Write a new migration file after the newest one."""
    engine = make_engine(load_settings().database_url) if autogenerate else None
    try:
        path = migrations.revision(message, engine=engine)
    finally:
        if engine is not None:
            engine.dispose()
    typer.echo(f"wrote {path}")


@app.command()
def stats(oem: str | None = typer.Option(None, help="Only this OEM.")) -> None:
    """Print queue depth per OEM and state, queue age and p50/p95 job time as JSON."""
    store = _store()
    typer.echo(json.dumps(store.stats(oem=oem).model_dump(), indent=2))
    store.dispose()


@app.command()
def run(
    oem: list[str] | None = typer.Option(None, "--oem", help="Only this OEM (repeatable)."),
    per_oem: int = typer.Option(20, "--per-oem", help="Demo cases per OEM when the CRM is empty."),
) -> None:
    """Run the nightly job for every OEM on the embedded default and print a summary."""
    from submissions_pipeline.demo import run_nightly

    try:
        summary = run_nightly(oem or None, per_oem=per_oem, echo=typer.echo)
    except KeyboardInterrupt as stop:
        # SIGTERM or Ctrl-C: the run in flight gave its jobs back (queue or reconciliation).
        typer.echo(f"stopped: {stop or 'interrupted'}; jobs in flight were given back", err=True)
        raise typer.Exit(130) from None
    raise typer.Exit(0 if summary.ok else 1)


@app.command()
def ui(port: int = typer.Option(3000, help="Port of the Dagster UI.")) -> None:
    """The sandbox portals and the Dagster UI (dagster dev) until Ctrl-C."""
    from submissions_pipeline.demo import serve_ui

    raise typer.Exit(serve_ui(port, echo=typer.echo))


@app.command()
def up(
    port: int = typer.Option(3000, help="Port of the Dagster UI."),
    browser_slots: int = typer.Option(2, help="Browsers at once across all runs."),
) -> None:
    """The production shape on one machine: dagster-webserver and dagster-daemon on PostgreSQL,
    the job store on the same server, the sandbox portals; until Ctrl-C or SIGTERM."""
    from submissions_pipeline.stack import Stack, StackConfig

    settings = load_settings()
    config = StackConfig(
        home=settings.home / "up",
        server_url=settings.postgres_url,
        port=port,
        browser_slots=browser_slots,
    )
    with Stack(config) as stack:
        code = stack.serve_forever(echo=typer.echo)
    typer.echo("stopped: webserver, daemon, code servers and run workers")
    raise typer.Exit(code)


@app.command()
def status(
    dagster_home: Path | None = typer.Option(
        None, help="The instance folder; default: `make up`'s (var/up/dagster) when it exists."
    ),
) -> None:
    """Daemon heartbeats and queue depth: exit 1 when a daemon thread has stopped beating."""
    from dagster import DagsterInstance

    from submissions_pipeline.launcher import daemon_heartbeats

    settings = load_settings()
    home = dagster_home or settings.home / "up" / "dagster"
    if not (home / "dagster.yaml").exists():
        home = settings.dagster_instance_dir
    with DagsterInstance.from_config(str(home)) as instance:
        beats = daemon_heartbeats(instance)
    for beat in beats:
        age = (
            "never"
            if beat.last_heartbeat_age_s is None
            else f"{beat.last_heartbeat_age_s:.0f} s ago"
        )
        typer.echo(f"{'ok  ' if beat.healthy else 'DOWN'} {beat.daemon:<28} last heartbeat {age}")
    raise typer.Exit(0 if beats and all(b.healthy for b in beats) else 1)


@app.command()
def seed(
    per_oem: int = typer.Option(
        20, "--per-oem", min=MIN_PER_OEM, help="Demo cases per sandbox OEM."
    ),
    rng_seed: int = typer.Option(7, "--seed", help="Same seed, same cases."),
) -> None:
    """Fill the embedded CRM with demo cases for every sandbox OEM (seeding again adds nothing)."""
    from submissions_pipeline.oems import oem_registry

    settings = load_settings()
    store = JobStore.from_url(settings.database_url)  # migrates: the CRM tables live beside jobs
    summary = seed_demo_cases(
        EmbeddedCrm(store.engine),
        oems=oem_registry(settings.adapters_dir).sandbox_oem_keys(),
        per_oem=per_oem,
        seed=rng_seed,
    )
    typer.echo(f"database: {settings.database_url_for_display}")
    typer.echo("oem        cases  valid  invalid  redaction_sensitive  test_records  added")
    for oem, c in summary.per_oem.items():
        typer.echo(
            f"{oem:<10} {c.cases:>5}  {c.valid:>5}  {c.invalid:>7}  "
            f"{c.redaction_sensitive:>19}  {c.test_records:>12}  {c.added:>5}"
        )
    typer.echo("(valid includes the test records; added is 0 when seeding again)")
    store.dispose()


def _print_report(report) -> None:  # type: ignore[no-untyped-def]
    for o in report.outcomes:
        detail = o.reference or f"{o.reason_code} ({o.error_class})"
        typer.echo(
            f"{o.oem:10} {o.case_id:14} attempt {o.attempt}  {o.state:22} {detail}"
            f"  {o.seconds:.1f}s"
        )
    typer.echo(
        f"{len(report.outcomes)} job(s) in {report.seconds:.1f}s; stop: {report.stop_reason}"
        + (f"; halted: {', '.join(report.halted_oems)}" if report.halted_oems else "")
    )


def _batch_config(browser, **batch):  # type: ignore[no-untyped-def]
    from submissions_pipeline.runner import BatchConfig

    headed = batch.pop("headed", False)
    video = batch.pop("video", None)
    cfg: BatchConfig = browser.batch_config(**batch)
    cfg.browser = cfg.browser.model_copy(update={"headless": not headed})
    if video is not None:
        cfg.evidence = cfg.evidence.model_copy(update={"video": video})
    return cfg


@app.command("run-batch")
def run_batch_command(
    oem: str | None = typer.Option(None, help="Only this OEM's jobs."),
    max_jobs: int = typer.Option(50, help="Stop after this many attempts."),
    context_cap: int | None = typer.Option(None, help="Concurrent browser contexts."),
    headed: bool = typer.Option(False, help="Show the browser (needs a display)."),
    video: str | None = typer.Option(None, help="off | on-retry | retain-on-failure | on"),
    dry_run: bool = typer.Option(False, help="Report what is due; claim nothing."),
    lease_s: float = typer.Option(180.0, help="Lease per claimed job; heartbeats renew it."),
) -> None:
    """Run one worker batch outside Dagster, for debugging an adapter or a portal."""
    from submissions_pipeline.resource_sets import worker_dependencies
    from submissions_pipeline.runner import run_batch

    with worker_dependencies(load_settings(), [oem] if oem else None) as (deps, browser):
        cfg = _batch_config(
            browser,
            oem=oem,
            max_jobs=max_jobs,
            dry_run=dry_run,
            lease_s=lease_s,
            context_cap=context_cap,
            headed=headed,
            video=video,
        )
        report = run_batch(cfg, deps)
    if dry_run:
        typer.echo(f"due now: {report.due_at_start}")
    _print_report(report)


@app.command()
def worker(
    oem: str | None = typer.Option(None, help="Only this OEM's jobs."),
    context_cap: int | None = typer.Option(None, help="Concurrent browser contexts."),
    poll_s: float = typer.Option(15.0, help="Sleep between empty polls."),
    once: bool = typer.Option(False, help="Drain the queue once and exit."),
) -> None:
    """A long-running worker: reap expired leases, pull due jobs, repeat (scale out with more)."""
    import time

    from submissions_pipeline.resource_sets import worker_dependencies
    from submissions_pipeline.runner import run_batch

    with worker_dependencies(load_settings(), [oem] if oem else None) as (deps, browser):
        while True:
            reaped = deps.store.reap_expired()
            if reaped:
                typer.echo(f"reaped {len(reaped)} expired lease(s)")
            report = run_batch(_batch_config(browser, oem=oem, context_cap=context_cap), deps)
            if report.outcomes:
                _print_report(report)
            if once:
                return
            if not report.outcomes:
                time.sleep(poll_s)


@app.command()
def audit(
    oem: str | None = typer.Option(None, help="Only this OEM."),
    since: datetime | None = typer.Option(None, help="Only jobs updated since (ISO date)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Find damage already done: cases submitted more than once, with more than one reference,
    or proven with data that differs from the CRM's case. Exit 1 when anything is found."""
    from submissions_pipeline.audit import audit as run_audit
    from submissions_pipeline.resource_sets import job_store_and_crm

    with job_store_and_crm(load_settings()) as (store, crm):
        since_utc = since.replace(tzinfo=since.tzinfo or UTC) if since else None
        report = run_audit(store, crm, oem=oem, since=since_utc)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        typer.echo(f"{report.cases} case(s), {report.jobs} job(s) examined")
        for f in report.findings:
            typer.echo(f"{f.oem:10} {f.case_id:16} {f.kind:24} {f.detail}  jobs {f.job_ids}")
        typer.echo("nothing found" if report.clean else f"{len(report.findings)} finding(s)")
    raise typer.Exit(0 if report.clean else 1)


review = typer.Typer(help="Jobs waiting for a person: the portal may hold the case.")
app.add_typer(review, name="review")


@review.command("list")
def review_list(oem: str | None = typer.Option(None, help="Only this OEM.")) -> None:
    """Every job in needs_review, with why it is there."""
    from submissions_pipeline.domain import SubmissionState

    store = _store()
    try:
        for job in store.list_jobs(oem=oem, states=[SubmissionState.NEEDS_REVIEW]):
            why = job.failure.message if job.failure else ""
            typer.echo(
                f"{job.job_id}  {job.oem:10} {job.case_id:16} clicks {job.submit_clicks}  {why}"
            )
    finally:
        store.dispose()


@review.command("submit-again")
def review_submit_again(
    job_id: str,
    by: str = typer.Option(..., help="Who checked the portal."),
    note: str = typer.Option(..., help="What was checked (kept in the job's history)."),
) -> None:
    """The portal does not hold the case: submit it again."""
    store = _store()
    try:
        job = store.review_submit_again(job_id, actor=f"person:{by}", note=note)
    finally:
        store.dispose()
    typer.echo(f"{job.case_id}: back in the queue ({job.state})")


@review.command("submitted-by-hand")
def review_submitted_by_hand(
    job_id: str,
    reference: str = typer.Option(..., help="The reference the portal shows for the case."),
    by: str = typer.Option(..., help="Who found or made the submission."),
    note: str = typer.Option("", help="Kept in the job's history."),
) -> None:
    """The portal holds the case (found, or submitted by hand): record it in the CRM and close."""
    from submissions_pipeline.resource_sets import job_store_and_crm

    with job_store_and_crm(load_settings()) as (store, crm):
        job = store.get(job_id)
        crm.record_human_submission(job.case_id, reference, by)
        job = store.review_submitted_by_hand(
            job_id, reference=reference, actor=f"person:{by}", note=note
        )
    typer.echo(f"{job.case_id}: recorded as submitted by {by} ({reference})")


@review.command("abandon")
def review_abandon(
    job_id: str,
    by: str = typer.Option(..., help="Who decided."),
    note: str = typer.Option(..., help="Why (kept in the job's history)."),
) -> None:
    """Close the job without a submission (the case was withdrawn)."""
    store = _store()
    try:
        job = store.review_abandon(job_id, actor=f"person:{by}", note=note)
    finally:
        store.dispose()
    typer.echo(f"{job.case_id}: closed ({job.state})")


@app.command()
def reap() -> None:
    """Take back jobs whose worker died (requeue, or reconcile when submit may have happened)."""
    store = _store()
    for job in store.reap_expired():
        typer.echo(f"{job.job_id} {job.case_id} -> {job.state}")
    store.dispose()


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sandbox(
    ctx: typer.Context,
    write_credentials: bool = typer.Option(
        True, help="Write the sandbox dealers' credentials under SUBMISSIONS_HOME for workers."
    ),
) -> None:
    """Serve the sandbox portals on loopback until interrupted (demo and debugging only).

    Every other option goes to the sandbox itself (`python -m sandbox --help`): ports, fault
    knobs, `--set aurora.ui_version=v2`.
    """
    import sandbox as sandbox_pkg
    from sandbox.server import main as sandbox_main
    from submissions_pipeline.demo import write_sandbox_credentials

    if write_credentials:
        path = write_sandbox_credentials(
            load_settings().home / "sandbox-credentials.json", list(sandbox_pkg.PORTALS)
        )
        typer.echo(f"credentials for workers: export SUBMISSIONS_CREDENTIALS_FILE={path}")
    raise typer.Exit(sandbox_main(list(ctx.args)))


@app.command()
def bench(
    full: bool = typer.Option(
        False,
        "--full",
        help="The full matrix: every variant at caps 1-4 in both scenarios over 200 (CPU-bound) "
        "and 60 (latency-bound) jobs, memory over 1,000 jobs (2-2.5 hours on 2 cores).",
    ),
    only: list[str] | None = typer.Option(
        None, "--only", help="throughput, memory or queue; repeat for several (default: all)."
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
    out: Path | None = typer.Option(None, help="Output folder (default SUBMISSIONS_HOME/bench)."),
) -> None:
    """Benchmark against raw-Playwright baselines: throughput, memory and the queue.

    Prints the tables and the targets (met or missed); writes JSON, PNG and markdown.

    The newest results are also `latest.*` in the output folder; bench/README.md explains them.
    """
    try:
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
    from bench.soak import SoakConfig, run_soak

    report = run_soak(
        SoakConfig(
            jobs=jobs, context_cap=context_cap, retry_time_scale=retry_time_scale, out_dir=out
        ),
        echo=typer.echo,
    )
    raise typer.Exit(0 if report.passed else 1)


if __name__ == "__main__":
    app()
