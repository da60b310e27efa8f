"""`python -m submissions_pipeline.cli`: the same command as `submissions`."""

from submissions_pipeline.cli import app

app()
