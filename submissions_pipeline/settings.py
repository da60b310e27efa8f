"""The process settings: the one place that reads the environment (`SUBMISSIONS_*` and a few
standard variables), with defaults that work on the embedded default."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

#: The repository (or installed site-packages) folder holding this package and `adapters/`.
PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: Where `submissions sandbox` serves the portals by default (loopback only); dev's portal
#: addresses when SUBMISSIONS_PORTAL_URLS is not set.
SANDBOX_PORTAL_URLS = {
    "northwind": "http://127.0.0.1:8701",
    "aurora": "http://127.0.0.1:8702",
    "kestrel": "http://127.0.0.1:8703",
}

Environment = Literal["dev", "stage", "prod"]

#: The longest a SigV4 presigned S3 link may live (7 days); the S3 store enforces the same.
PRESIGN_EXPIRY_MAX_S = 7 * 24 * 3600


class SettingsError(ValueError):
    """The environment cannot run this process; the message names the variables to set."""


class Settings(BaseSettings):
    """Everything the process takes from its environment, read once.

    `env` picks a whole resource set (see `resource_sets.py`); the other fields configure the
    systems inside it. Every field's environment variable is `SUBMISSIONS_<FIELD>` unless its
    description names another one.
    """

    model_config = SettingsConfigDict(
        env_prefix="SUBMISSIONS_", extra="ignore", populate_by_name=True
    )

    env: Environment = Field("dev", description="dev | stage | prod: the resource set.")
    home: Path = Field(Path("var"), description="Data folder: SQLite file, evidence, scratch.")
    db_url: str | None = Field(
        None,
        description="Job store and embedded CRM database (SQLAlchemy URL); default: SQLite "
        "under `home`. Required outside dev.",
    )
    portal_urls: dict[str, str] | None = Field(
        None,
        description="JSON {oem: base URL}; dev defaults to the sandbox's ports. Required "
        "outside dev.",
    )
    credentials: SecretStr | None = Field(
        None, description="Dealer credentials as inline JSON {oem: {dealer: {...}}}."
    )
    credentials_file: Path | None = Field(
        None, description="Dealer credentials as a JSON file (a mounted secret)."
    )
    artifact_store: Literal["local", "s3"] | None = Field(
        None, description="Where evidence goes: local (dev's default) or s3 (stage and prod)."
    )
    s3_bucket: str | None = Field(None, description="Evidence bucket (with artifact_store=s3).")
    s3_endpoint: str | None = Field(None, description="An S3-compatible endpoint (None: AWS).")
    aws_region: str = Field(
        "us-east-1",
        validation_alias=AliasChoices("SUBMISSIONS_AWS_REGION", "AWS_REGION"),
        description="AWS_REGION: the bucket's region.",
    )
    artifact_ttl_days: int = Field(30, ge=1, description="Evidence lifetime in days.")
    artifact_file_mode: str = Field(
        "0600",
        pattern=r"^0?[0-7]{3}$",
        description="Permissions of local evidence files, octal: 0600 (owner only), or 0640 "
        "where a group must read the evidence. Nothing for other users: it holds personal data.",
    )
    artifact_dir_mode: str = Field(
        "0700",
        pattern=r"^0?[0-7]{3}$",
        description="Permissions of local evidence folders, octal: 0700, or 0750 with 0640.",
    )
    presign_expiry_s: int = Field(
        PRESIGN_EXPIRY_MAX_S,
        ge=1,
        le=PRESIGN_EXPIRY_MAX_S,
        description="Lifetime of the presigned S3 links to evidence (metadata, CRM), seconds; "
        "at most 7 days, the longest S3 accepts.",
    )
    chromium: str | None = Field(
        None,
        description="Browser binary; default: Playwright's headless shell "
        "(/usr/lib/chromium/chromium-headless-shell), else the full Chromium.",
    )
    context_cap: int = Field(3, ge=1, le=16, description="Browser contexts per worker.")
    failpoints: str = Field("", description="Crash points to enable (crash tests only).")
    retry_time_scale: float = Field(
        1.0,
        gt=0,
        description="Multiplies every retry delay and reconciliation window (1 in production; "
        "soaks and tests shrink minutes to seconds).",
    )
    sensor_interval_s: int | None = Field(
        None,
        ge=5,
        description="Shortens every sensor's minimum interval to this many seconds (the "
        "scheduler soak's accelerated cadence); default: each sensor's own interval.",
    )
    new_cases_sensor: bool = Field(
        False,
        description="Start the new-CRM-cases sensor by default (near-real-time intake beside "
        "the nightly schedules); an operator can still switch it in the UI.",
    )
    postgres_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        description="The PostgreSQL server `make up` and the scheduler soak create their job "
        "store and Dagster databases on (an admin connection to an existing database).",
    )
    adapters_dir: Path = Field(
        PROJECT_ROOT / "adapters",
        description="Folder of OEM adapters: registry.toml and one folder per OEM.",
    )
    dagster_home: Path | None = Field(
        None,
        validation_alias=AliasChoices("DAGSTER_HOME"),
        description="DAGSTER_HOME: Dagster's instance folder; default `home`/dagster.",
    )
    playwright_browsers_path: Path | None = Field(
        None,
        validation_alias=AliasChoices("PLAYWRIGHT_BROWSERS_PATH"),
        description="PLAYWRIGHT_BROWSERS_PATH: where Playwright finds its ffmpeg; default "
        "`home`/pw-browsers.",
    )
    bench_pg_url: str | None = Field(
        None,
        validation_alias=AliasChoices("SUBMISSIONS_BENCH_PG_URL", "SUBMISSIONS_TEST_PG_URL"),
        description="SUBMISSIONS_BENCH_PG_URL (or SUBMISSIONS_TEST_PG_URL): the benchmark's "
        "PostgreSQL server.",
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        return home.resolve()

    # ------------------------------------------------------------------ derived values
    @property
    def database_url(self) -> str:
        """The job store's URL: SUBMISSIONS_DB_URL or SQLite under `home`."""
        return self.db_url or f"sqlite:///{self.home / 'submissions.db'}"

    @property
    def database_url_for_display(self) -> str:
        """The database URL with its password masked, for logs and terminals."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    @property
    def portals(self) -> dict[str, str]:
        """OEM key -> portal base URL (dev without SUBMISSIONS_PORTAL_URLS: the sandbox)."""
        if self.portal_urls is not None:
            return dict(self.portal_urls)
        return dict(SANDBOX_PORTAL_URLS) if self.env == "dev" else {}

    @property
    def artifacts(self) -> Literal["local", "s3"]:
        """The artifact store this environment uses."""
        return self.artifact_store or ("local" if self.env == "dev" else "s3")

    @property
    def artifacts_dir(self) -> Path:
        """Local-disk artifact store root."""
        return self.home / "artifacts"

    @property
    def dagster_instance_dir(self) -> Path:
        """DAGSTER_HOME, or `home`/dagster."""
        return (self.dagster_home or self.home / "dagster").resolve()

    @property
    def browsers_path(self) -> Path:
        """Where Playwright looks for its helper binaries (the ffmpeg link)."""
        return (self.playwright_browsers_path or self.home / "pw-browsers").resolve()

    @property
    def enabled_failpoints(self) -> frozenset[str]:
        """The crash points SUBMISSIONS_FAILPOINTS names."""
        return frozenset(p for p in self.failpoints.split(",") if p)

    def from_environment(self, field: str) -> bool:
        """Whether `field` holds exactly what its SUBMISSIONS_ variable says: such values are
        handed to Dagster as `EnvVar`, so its UI shows the variable's name, never a secret."""
        raw = os.environ.get(f"SUBMISSIONS_{field.upper()}")
        value = getattr(self, field)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return raw is not None and raw == (str(value) if value is not None else None)

    # ------------------------------------------------------------------ checks
    def missing_for_deployment(self) -> list[str]:
        """What a stage or prod process lacks, as the variables to set (empty in dev)."""
        if self.env == "dev":
            return []
        missing = []
        if not self.db_url:
            missing.append("SUBMISSIONS_DB_URL (the PostgreSQL URL of the job store)")
        if not self.portal_urls:
            missing.append("SUBMISSIONS_PORTAL_URLS (JSON {oem: base URL})")
        if self.credentials is None and self.credentials_file is None:
            missing.append("SUBMISSIONS_CREDENTIALS_FILE (the mounted dealer-credentials file)")
        elif self.credentials_file is not None and not self.credentials_file.is_file():
            missing.append(f"SUBMISSIONS_CREDENTIALS_FILE ({self.credentials_file} does not exist)")
        if self.artifacts == "s3" and not self.s3_bucket:
            missing.append("SUBMISSIONS_S3_BUCKET (the evidence bucket)")
        return missing

    def require_deployable(self) -> Settings:
        """Raise SettingsError naming every missing variable; return self when complete."""
        missing = self.missing_for_deployment()
        if missing:
            raise SettingsError(
                f"SUBMISSIONS_ENV={self.env} needs: " + "; ".join(missing) + " (see deploy/)"
            )
        return self


def load_settings() -> Settings:
    """Settings from the current environment (read anew on every call)."""
    return Settings()


@cache
def process_settings() -> Settings:
    """Settings read once per process, for hot paths (failpoints) that cannot afford more."""
    return Settings()


@contextmanager
def exported_environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) variables for this process and its children, such as a
    `dagster dev` started by the demo, and restore the previous values afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
