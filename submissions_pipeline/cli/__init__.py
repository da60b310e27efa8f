"""The `submissions` command (`submissions_pipeline.cli:app`)."""

from submissions_pipeline.cli import queue, serve, tools
from submissions_pipeline.cli.app import app

__all__ = ["app", "queue", "serve", "tools"]
