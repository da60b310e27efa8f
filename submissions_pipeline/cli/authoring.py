"""Commands for adding an OEM: `new-oem` scaffolds an adapter from the portal's login page."""

from __future__ import annotations

import asyncio
import json

import typer

from submissions_pipeline.cli.app import app
from submissions_pipeline.settings import load_settings


@app.command("new-oem")
def new_oem(
    key: str = typer.Argument(..., help="The new OEM's key (lowercase, e.g. acme)."),
    url: str = typer.Option(
        ..., "--url", help="The portal's address (its login page or any page that redirects there)."
    ),
    name: str | None = typer.Option(None, help="How people name the OEM (default: the key)."),
) -> None:
    """Create adapters/KEY/ (oem.toml, selectors/v1.json, the subclass) and its registry entry,
    the selector file's login part read from the portal's login form; then iterate with
    `submissions check-adapter KEY` until it passes."""
    from submissions_pipeline.resource_sets import resource_set
    from submissions_pipeline.runner.probe import probe_login
    from submissions_pipeline.scaffold import ScaffoldError, selector_skeleton, write_scaffold

    settings = load_settings()
    browser = resource_set(settings)["browser"].batch_config().browser
    probe = asyncio.run(probe_login(url, browser, settings.home))
    if "password" not in probe.fields or probe.submit is None:
        typer.echo(
            f"no login form at {probe.url}: found fields {probe.fields}, buttons {probe.buttons}",
            err=True,
        )
        raise typer.Exit(1)
    login = {"fields": probe.fields, "submit": probe.submit}
    try:
        written = write_scaffold(
            settings.adapters_dir,
            key,
            name or key.capitalize(),
            selector_skeleton(key, probe.login_path, login),
        )
    except ScaffoldError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"login page {probe.url}: {json.dumps(login)}")
    for field in probe.unmatched:
        typer.echo(f"  not a credential field (left out): {field}")
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(
        f"next: add {key} to SUBMISSIONS_PORTAL_URLS and SUBMISSIONS_CREDENTIALS[_FILE], then run "
        f"`submissions check-adapter {key}` and replace each TODO locator it reports"
    )
