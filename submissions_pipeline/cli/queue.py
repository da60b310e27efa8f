"""Commands that operate the queue and the CRM: migrations, stats, batches, workers,
audits, reviews."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from submissions_pipeline.cli.app import app, db
from submissions_pipeline.crm import MIN_PER_OEM, EmbeddedCrm, seed_demo_cases
from submissions_pipeline.settings import load_settings
from submissions_pipeline.store import JobStore
from submissions_pipeline.store import migrate as migrations
from submissions_pipeline.store.engine import make_engine


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
    retry_time_scale: float | None = typer.Option(
        None,
        "--retry-time-scale",
        min=0.0,
        help="Scale this batch's retry and reconciliation delays (0.01: minutes become seconds).",
    ),
) -> None:
    """Run one worker batch outside Dagster, for debugging an adapter or a portal."""
    from submissions_pipeline.resource_sets import worker_dependencies
    from submissions_pipeline.runner import run_batch

    with worker_dependencies(load_settings(), [oem] if oem else None) as (deps, browser):
        if retry_time_scale is not None:
            deps.store.policy = deps.store.policy.model_copy(
                update={"time_scale": retry_time_scale}
            )
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
