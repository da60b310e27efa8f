"""Where the embedded default keeps its files and database, overridable by environment variables."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field

#: Where `submissions sandbox` serves the portals by default (loopback only).
SANDBOX_PORTAL_URLS = {
    "northwind": "http://127.0.0.1:8701",
    "aurora": "http://127.0.0.1:8702",
    "kestrel": "http://127.0.0.1:8703",
}


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

    portal_urls: dict[str, str] = Field(
        default_factory=lambda: (
            json.loads(os.environ["SUBMISSIONS_PORTAL_URLS"])
            if os.environ.get("SUBMISSIONS_PORTAL_URLS")
            else dict(SANDBOX_PORTAL_URLS)
        ),
        description="SUBMISSIONS_PORTAL_URLS: JSON {oem: base URL}; defaults to the sandbox.",
    )

    env: str = Field(
        default_factory=lambda: os.environ.get("SUBMISSIONS_ENV", "dev"),
        description="SUBMISSIONS_ENV: dev | stage | prod; prefixes artifact keys.",
    )
    s3_bucket: str | None = Field(
        default_factory=lambda: os.environ.get("SUBMISSIONS_S3_BUCKET") or None,
        description="SUBMISSIONS_S3_BUCKET: store evidence in S3 instead of local disk.",
    )
    s3_endpoint: str | None = Field(
        default_factory=lambda: os.environ.get("SUBMISSIONS_S3_ENDPOINT") or None,
        description="SUBMISSIONS_S3_ENDPOINT: an S3-compatible endpoint (None: AWS).",
    )
    artifact_ttl_days: int = Field(
        default_factory=lambda: int(os.environ.get("SUBMISSIONS_ARTIFACT_TTL_DAYS", "30")),
        description="SUBMISSIONS_ARTIFACT_TTL_DAYS: evidence lifetime (lifecycle rule on S3).",
    )

    @property
    def artifacts_dir(self) -> Path:
        """Local-disk artifact store root (the embedded default for evidence)."""
        return self.home / "artifacts"


def load_settings() -> Settings:
    """Settings from the current environment."""
    return Settings()
