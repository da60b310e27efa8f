"""The `submissions` command: operate the pipeline outside the Dagster UI."""

from __future__ import annotations

import json

import typer

from submissions_pipeline.crm import MIN_PER_OEM, EmbeddedCrm, seed_demo_cases
from submissions_pipeline.settings import load_settings
from submissions_pipeline.store import JobStore

app = typer.Typer(help="Automated OEM portal submissions.", no_args_is_help=True)


def _store() -> JobStore:
    return JobStore.from_url(load_settings().db_url)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (idempotent)."""
    settings = load_settings()
    JobStore.from_url(settings.db_url).dispose()
    typer.echo(f"database ready: {settings.db_url}")


@app.command()
def stats(oem: str | None = typer.Option(None, help="Only this OEM.")) -> None:
    """Print queue depth per OEM and state, queue age and p50/p95 job time as JSON."""
    store = _store()
    typer.echo(json.dumps(store.stats(oem=oem).model_dump(), indent=2))
    store.dispose()


@app.command()
def run() -> None:
    """Run the main job on the embedded default (today: migrate and report the queue)."""
    settings = load_settings()
    store = JobStore.from_url(settings.db_url)
    st = store.stats()
    typer.echo(f"database: {settings.db_url}")
    typer.echo(f"jobs by OEM and state: {json.dumps(st.depth) if st.depth else 'none yet'}")
    typer.echo(f"due now: {st.due_now}; running: {st.running}")
    store.dispose()


@app.command()
def seed(
    per_oem: int = typer.Option(
        20, "--per-oem", min=MIN_PER_OEM, help="Demo cases per sandbox OEM."
    ),
    rng_seed: int = typer.Option(7, "--seed", help="Same seed, same cases."),
) -> None:
    """Fill the embedded CRM with demo cases for every sandbox OEM (seeding again adds nothing)."""
    settings = load_settings()
    store = JobStore.from_url(settings.db_url)  # migrates: the CRM tables live beside the jobs
    summary = seed_demo_cases(EmbeddedCrm(store.engine), per_oem=per_oem, seed=rng_seed)
    typer.echo(f"database: {settings.db_url}")
    typer.echo("oem        cases  valid  invalid  redaction_sensitive  test_records  added")
    for oem, c in summary.per_oem.items():
        typer.echo(
            f"{oem:<10} {c.cases:>5}  {c.valid:>5}  {c.invalid:>7}  "
            f"{c.redaction_sensitive:>19}  {c.test_records:>12}  {c.added:>5}"
        )
    typer.echo("(valid includes the test records; added is 0 when seeding again)")
    store.dispose()


if __name__ == "__main__":
    app()
