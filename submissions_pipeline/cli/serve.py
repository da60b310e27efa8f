"""Commands that start things: the nightly demo, the UIs, the console, the `make up` stack
and its status."""

from __future__ import annotations

from pathlib import Path

import typer

from submissions_pipeline.cli.app import app
from submissions_pipeline.settings import load_settings


@app.command()
def run(
    oem: list[str] | None = typer.Option(None, "--oem", help="Only this OEM (repeatable)."),
    per_oem: int = typer.Option(20, "--per-oem", help="Demo cases per OEM when the CRM is empty."),
) -> None:
    """Run the nightly job and print a summary: the sandbox demo (every sandbox OEM, seeded),
    or with SUBMISSIONS_PORTAL_URLS set, `--oem X` against that real portal and the configured
    dealer accounts, on the cases already in the CRM."""
    from submissions_pipeline.demo import run_configured, run_nightly

    try:
        if load_settings().portal_urls is not None:
            try:
                summary = run_configured(oem or [], echo=typer.echo)
            except ValueError as bad:
                typer.echo(f"cannot run: {bad}", err=True)
                raise typer.Exit(2) from None
        else:
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
def console() -> None:
    """The ops console (evidence, review queue) at SUBMISSIONS_CONSOLE_HOST:PORT until Ctrl-C."""
    from submissions_pipeline.console.serve import serve

    settings = load_settings()
    typer.echo(f"console at http://{settings.console_host}:{settings.console_port}")
    serve(settings)


@app.command("console-user")
def console_user(
    name: str = typer.Argument(..., help="The operator's sign-in name."),
    role: str = typer.Option("operator", help="viewer (looks) or operator (also acts)."),
) -> None:
    """Add or replace a console account; the password is asked for and stored only hashed."""
    from submissions_pipeline.console.auth import Accounts, Role

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    path = load_settings().console_accounts_path
    Accounts(path).put(name, password, Role(role))
    typer.echo(f"{name} ({role}) saved in {path}")


@app.command()
def up(
    port: int = typer.Option(3000, help="Port of the Dagster UI."),
    browser_slots: int = typer.Option(2, help="Browsers at once across all runs."),
) -> None:
    """The production shape on one machine: dagster-webserver, dagster-daemon and a code server
    on PostgreSQL, the job store on the same server, the sandbox portals; until Ctrl-C or
    SIGTERM. The daemon can be restarted without stopping the runs in flight."""
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
