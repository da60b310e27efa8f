"""The `submissions` command (`submissions_pipeline.cli:app`)."""

from submissions_pipeline.cli import authoring, cases, fleet, queue, serve, tools
from submissions_pipeline.cli.app import app

__all__ = ["app", "authoring", "cases", "fleet", "queue", "serve", "tools"]
