"""Where the embedded default keeps its files and database, overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field


def _home() -> Path:
    return Path(os.environ.get("SUBMISSIONS_HOME", "var")).resolve()


class Settings(BaseModel):
    """Process-wide settings read once from the environment; every one has a working default."""

    home: Path = Field(default_factory=_home, description="SUBMISSIONS_HOME: data folder.")
    db_url: str = Field(
        default_factory=lambda: (
            os.environ.get("SUBMISSIONS_DB_URL") or f"sqlite:///{_home() / 'submissions.db'}"
        ),
        description="SUBMISSIONS_DB_URL: job store and embedded CRM database.",
    )

    @property
    def artifacts_dir(self) -> Path:
        """Local-disk artifact store root (the embedded default for evidence)."""
        return self.home / "artifacts"


def load_settings() -> Settings:
    """Settings from the current environment."""
    return Settings()
