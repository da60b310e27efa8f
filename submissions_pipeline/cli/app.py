"""The `submissions` command group: operate the pipeline outside the Dagster UI.

Commands live in modules by what they are for (`queue`, `serve`, `tools`); each registers
itself on `app` when the package is imported.
"""

from __future__ import annotations

import typer

from submissions_pipeline.api.commands import serve_api, webhooks
from submissions_pipeline.oems import OemConfigError
from submissions_pipeline.settings import SettingsError


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
app.command("api")(serve_api)
app.add_typer(webhooks, name="webhooks")
