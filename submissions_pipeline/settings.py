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

from submissions_pipeline.links import DEFAULT_CONSOLE_URL

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

    # An empty variable is an unset one: `PLAYWRIGHT_BROWSERS_PATH=` would otherwise be the
    # working folder, and `SUBMISSIONS_DB_URL=` a URL that no engine accepts.
    model_config = SettingsConfigDict(
        env_prefix="SUBMISSIONS_", extra="ignore", populate_by_name=True, env_ignore_empty=True
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
    # -- the ops console (`submissions console`) -------------------------------------------
    console_url: str = Field(
        DEFAULT_CONSOLE_URL,
        description="The console's address as people reach it: the CRM and Dagster metadata "
        "link to `<console_url>/jobs/<job_id>`, never to a file or a presigned URL.",
    )
    console_host: str = Field(
        "127.0.0.1", description="Interface the console listens on: loopback unless told."
    )
    console_port: int = Field(8710, ge=1, le=65535, description="The console's port.")
    console_accounts_file: Path | None = Field(
        None,
        description="Operator accounts (JSON, hashed passwords; a mounted secret); default "
        "`home`/console-accounts.json, written by `submissions console-user`.",
    )
    console_session_secret: SecretStr | None = Field(
        None,
        description="Key that signs session cookies; default: a random key kept in "
        "`home`/console-session.key (owner-only).",
    )
    console_session_ttl_s: int = Field(
        8 * 3600, ge=60, description="How long a sign-in lasts, seconds."
    )
    chromium: str | None = Field(
        None,
        description="Browser binary; default: Playwright's headless shell "
        "(/usr/lib/chromium/chromium-headless-shell), else the full Chromium.",
    )
    context_cap: int = Field(3, ge=1, le=16, description="Browser contexts per worker.")
    failpoints: str = Field("", description="Crash points to enable (crash tests only).")
    # -- who drives the browsers, and the fleet worker (`submissions worker`) ------------------
    browser_driver: Literal["run", "fleet"] = Field(
        "run",
        description="Who drives the browsers: run (one machine, the default and `make up`: the "
        "nightly run's worker ops) or fleet (a worker Deployment does; the nightly run only "
        "enqueues, then waits for the OEM's due jobs to settle and reports the attempts made).",
    )
    worker_host: str = Field(
        "127.0.0.1", description="Where a worker's probes listen (0.0.0.0 inside a pod)."
    )
    worker_port: int = Field(
        9464, ge=0, le=65535, description="A worker's /healthz, /readyz and /metrics port."
    )
    worker_poll_s: float = Field(15.0, gt=0, description="A worker's sleep after an empty poll.")
    worker_drain_grace_s: float = Field(
        90.0,
        ge=0,
        description="After SIGTERM, how long in-flight attempts may finish before they are given "
        "back; the pod's terminationGracePeriodSeconds must exceed it.",
    )
    worker_memory_limit_mb: float = Field(
        1500.0, gt=0, description="Relaunch a worker's browser when its tree's PSS passes this."
    )
    worker_stall_s: float = Field(
        120.0, gt=0, description="A worker's /healthz fails after this long without progress."
    )
    db_pool_size: int = Field(
        5,
        ge=1,
        description="PostgreSQL connections each process keeps (plus db_max_overflow at peaks); "
        "fleet size x (size + overflow) must stay under the server's max_connections.",
    )
    db_max_overflow: int = Field(10, ge=0, description="Extra connections a process may open.")
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
    crm: Literal["embedded", "salesforce"] = Field(
        "embedded",
        description="The CRM cases come from: embedded (the project database, dev's default) "
        "or salesforce (an org through its REST API; see the salesforce_* fields).",
    )
    salesforce_token_url: str = Field(
        "https://login.salesforce.com/services/oauth2/token",
        description="OAuth 2.0 token URL (test.salesforce.com for a sandbox org, or the org's "
        "My Domain).",
    )
    salesforce_auth_flow: Literal["jwt", "client_credentials"] = Field(
        "jwt", description="jwt (JWT bearer, a certificate) or client_credentials."
    )
    salesforce_client_id: str | None = Field(None, description="The connected app's key.")
    salesforce_client_secret: SecretStr | None = Field(
        None, description="The connected app's secret (client_credentials)."
    )
    salesforce_username: str | None = Field(None, description="The integration user (jwt).")
    salesforce_private_key: SecretStr | None = Field(
        None, description="The connected app's private key, PEM (jwt); or _FILE."
    )
    salesforce_private_key_file: Path | None = Field(
        None, description="The private key as a mounted file (jwt)."
    )
    salesforce_api_version: str = Field("62.0", description="The pinned REST API version.")
    salesforce_object: str | None = Field(
        None, description="The case object (default: the mapping's, the standard Case)."
    )
    salesforce_mapping_file: Path | None = Field(
        None, description="Contract -> Salesforce names (default contracts/salesforce-v2.json)."
    )
    salesforce_ca_file: Path | None = Field(
        None, description="A CA bundle to trust instead of the system's (the local test org)."
    )
    salesforce_integration_user_id: str | None = Field(
        None, description="The integration user's Id, when the token does not name it."
    )
    api_host: str = Field(
        "127.0.0.1", description="Where `submissions api` listens; loopback unless exposed."
    )
    api_port: int = Field(8780, ge=1, le=65535, description="Port of `submissions api`.")
    api_clients: SecretStr | None = Field(
        None,
        description='HMAC secrets of the API\'s clients, JSON {"client": ["secret", ...]}: '
        "several per client so a secret can be rotated without downtime.",
    )
    api_bearer_tokens: SecretStr | None = Field(
        None,
        description='Bearer tokens of clients that cannot sign (JSON {"client": ["token"]}); '
        "weaker than a signature (no replay protection): only behind TLS.",
    )
    api_rate_per_minute: int = Field(60, ge=1, description="Requests one API client may make.")
    api_max_body_bytes: int = Field(65536, ge=256, description="Largest request body accepted.")
    webhook_subscriptions: SecretStr | None = Field(
        None,
        description='Outbound webhooks, JSON [{"name", "url", "secret", "events": ["job.*"], '
        '"oems": []}] (empty events or oems: all).',
    )
    webhook_max_attempts: int = Field(
        10, ge=1, description="Deliveries tried before an event is marked dead for a subscriber."
    )
    webhook_backoff_s: float = Field(
        30.0, gt=0, description="First retry delay; doubles per attempt, with jitter."
    )
    webhook_backoff_max_s: float = Field(3600.0, gt=0, description="Longest retry delay.")
    webhook_retention_days: float = Field(
        7.0, gt=0, description="How long delivered events are kept before they are purged."
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
    def console_accounts_path(self) -> Path:
        """The console's accounts file."""
        return (self.console_accounts_file or self.home / "console-accounts.json").resolve()

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
        return missing + self.missing_for_salesforce()

    def missing_for_salesforce(self) -> list[str]:
        """What SUBMISSIONS_CRM=salesforce lacks to log in (empty for the embedded CRM)."""
        if self.crm != "salesforce":
            return []
        missing = []
        if not self.salesforce_client_id:
            missing.append("SUBMISSIONS_SALESFORCE_CLIENT_ID (the connected app's key)")
        if self.salesforce_auth_flow == "client_credentials":
            if self.salesforce_client_secret is None:
                missing.append("SUBMISSIONS_SALESFORCE_CLIENT_SECRET")
        else:
            if not self.salesforce_username:
                missing.append("SUBMISSIONS_SALESFORCE_USERNAME (the integration user)")
            if self.salesforce_private_key is None and self.salesforce_private_key_file is None:
                missing.append("SUBMISSIONS_SALESFORCE_PRIVATE_KEY_FILE (the app's key)")
        return missing

    def require_deployable(self) -> Settings:
        """Raise SettingsError naming every missing variable; return self when complete."""
        missing = self.missing_for_deployment() or self.missing_for_salesforce()
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
