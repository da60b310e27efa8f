"""The ops console: a server-rendered web app over the job store and the evidence."""

from submissions_pipeline.console.app import ConsoleDeps, create_app

__all__ = ["ConsoleDeps", "create_app"]
