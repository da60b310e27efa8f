"""Dagster resources: one per external system the pipeline talks to, configured, never branched on.

Assets and ops receive these as parameters. Which implementation a deployment gets (SQLite or
PostgreSQL, local disk or S3, sandbox or real portals) is decided once, in `definitions.py`, by
swapping whole resource sets; nothing downstream asks which environment it runs in.
"""

import json
from abc import ABC, abstractmethod
from datetime import timedelta
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr, model_validator

from submissions_pipeline.api.dispatcher import WebhookDispatcher, parse_subscriptions
from submissions_pipeline.artifacts import (
    MAX_PRESIGN_EXPIRY_S,
    ArtifactStore,
    LocalArtifactStore,
    S3ArtifactStore,
)
from submissions_pipeline.artifacts.local import check_modes, parse_mode
from submissions_pipeline.credentials import CredentialProvider, JsonCredentialProvider
from submissions_pipeline.crm import CrmClient, EmbeddedCrm
from submissions_pipeline.domain import RetryPolicy
from submissions_pipeline.links import DEFAULT_CONSOLE_URL
from submissions_pipeline.runner import (
    BatchConfig,
    BrowserSettings,
    EvidenceSettings,
    PortalAdapter,
    RunnerDeps,
    StepBudgets,
)
from submissions_pipeline.store import JobStore


class JobStoreResource(ConfigurableResource):
    """The job store and global queue: SQLite under SUBMISSIONS_HOME by default, PostgreSQL by URL.

    One store (one connection pool) per process, opened on first use and closed after the step.
    """

    db_url: str = Field(
        description="SQLAlchemy URL: sqlite:///…/submissions.db or postgresql://… "
        "(set it through EnvVar('SUBMISSIONS_DB_URL') when it carries a password)."
    )
    migrate: bool = Field(
        True, description="Bring the schema to the newest migration when the store is opened."
    )
    max_attempts: int = Field(3, ge=1, description="Attempts per job, the first included.")
    retry_time_scale: float = Field(
        1.0,
        gt=0,
        description="Multiplies every retry delay (2-10 min of jitter in production); the soak "
        "scales it down to finish in minutes.",
    )

    _store: JobStore | None = PrivateAttr(default=None)

    def retry_policy(self) -> RetryPolicy:
        """The queue's retry budget."""
        return RetryPolicy(max_attempts=self.max_attempts, time_scale=self.retry_time_scale)

    def get_store(self) -> JobStore:
        """The store for this process."""
        if self._store is None:
            self._store = JobStore.from_url(
                self.db_url, migrate_schema=self.migrate, policy=self.retry_policy()
            )
        return self._store

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None


class WebhooksResource(ConfigurableResource):
    """The outbound webhook receivers (subscriptions) and how the outbox is delivered to them."""

    subscriptions_json: str = Field(
        "",
        description="JSON list of subscriptions (name, url, secret, events, oems); through "
        "EnvVar('SUBMISSIONS_WEBHOOK_SUBSCRIPTIONS'): it holds the signing secrets.",
    )
    evidence_base_url: str = Field(
        "http://127.0.0.1:8790/evidence", description="Durable evidence links: <base>/<job_id>."
    )
    max_attempts: int = Field(10, ge=1, description="Tries before a delivery is dead.")
    backoff_s: float = Field(30.0, gt=0, description="First retry delay, doubling, jittered.")
    backoff_max_s: float = Field(3600.0, gt=0, description="Longest retry delay.")
    retention_days: float = Field(7.0, gt=0, description="Delivered events kept this long.")

    def dispatcher(self, store: JobStore) -> WebhookDispatcher:
        """A dispatcher over `store`; the caller closes it."""
        return WebhookDispatcher(
            store,
            parse_subscriptions(self.subscriptions_json),
            evidence_base_url=self.evidence_base_url,
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_s,
            backoff_max_s=self.backoff_max_s,
            retention=timedelta(days=self.retention_days),
        )


class CrmResource(ConfigurableResource, ABC):
    """The CRM cases come from and outcomes go back to."""

    @abstractmethod
    def get_client(self) -> CrmClient:
        """A client for this process."""


class EmbeddedCrmResource(CrmResource):
    """The embedded CRM: cases and their activity log in the project database."""

    db_url: str = Field(description="Database holding the CRM tables (usually the job store's).")

    _crm: EmbeddedCrm | None = PrivateAttr(default=None)

    def get_client(self) -> EmbeddedCrm:
        if self._crm is None:
            self._crm = EmbeddedCrm.from_url(self.db_url)
        return self._crm

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._crm is not None:
            self._crm.dispose()
            self._crm = None


class SalesforceCrmResource(CrmResource):
    """A Salesforce org through simple-salesforce (SUBMISSIONS_CRM=salesforce).

    Secrets arrive as EnvVar when they came from the environment, or as a mounted key file;
    they never reach metadata or logs (the client's repr shows none).
    """

    token_url: str = Field(description="OAuth 2.0 token URL.")
    auth_flow: str = Field("jwt", description="jwt or client_credentials.")
    client_id: str = Field(description="The connected app's key.")
    client_secret: str | None = Field(None, description="client_credentials: the app's secret.")
    username: str | None = Field(None, description="jwt: the integration user.")
    private_key: str | None = Field(None, description="jwt: the app's key (PEM).")
    private_key_file: str | None = Field(None, description="jwt: the app's key as a file.")
    api_version: str = Field("62.0", description="The pinned REST API version.")
    case_object: str | None = Field(None, description="Case or a custom object.")
    mapping_file: str | None = Field(None, description="Contract -> Salesforce names.")
    ca_file: str | None = Field(None, description="A CA bundle to trust (the local test org).")
    integration_user_id: str | None = Field(None, description="When the token names none.")
    evidence_link_base: str | None = Field(None, description="Durable evidence link base.")

    _crm: CrmClient | None = PrivateAttr(default=None)

    def get_client(self) -> CrmClient:
        if self._crm is None:
            import requests

            from submissions_pipeline.crm.salesforce import SalesforceCrm
            from submissions_pipeline.crm.salesforce_api import SalesforceApi, SalesforceAuth
            from submissions_pipeline.crm.salesforce_mapping import SalesforceMapping

            key = self.private_key
            if key is None and self.private_key_file:
                key = Path(self.private_key_file).read_text()
            session = requests.Session()
            if self.ca_file:
                session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
                session.verify = self.ca_file
            auth = SalesforceAuth(
                client_id=self.client_id,
                flow="client_credentials" if self.auth_flow == "client_credentials" else "jwt",
                token_url=self.token_url,
                username=self.username,
                private_key=key,
                client_secret=self.client_secret,
            )
            mapping = SalesforceMapping.load(Path(self.mapping_file) if self.mapping_file else None)
            self._crm = SalesforceCrm(
                SalesforceApi(auth, session=session, api_version=self.api_version),
                mapping,
                case_object=self.case_object,
                integration_user_id=self.integration_user_id,
                evidence_link_base=self.evidence_link_base,
            )
        return self._crm

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self._crm = None


class ArtifactStoreResource(ConfigurableResource, ABC):
    """Where evidence lives, under `{env}/{oem}/{date}/{job_id}/attempt-{n}/…` keys."""

    env: str = Field("dev", description="Key prefix naming the environment: dev, stage or prod.")
    ttl_days: int = Field(30, ge=1, description="Days artifacts are kept before they expire.")
    console_url: str = Field(
        DEFAULT_CONSOLE_URL,
        description="Base URL of the ops console: the CRM and metadata link to its job pages.",
    )

    @abstractmethod
    def get_store(self) -> ArtifactStore:
        """The artifact store for this process."""

    @abstractmethod
    def location(self) -> str:
        """Where the evidence is, for people: a folder or an s3:// prefix."""


class LocalArtifactStoreResource(ArtifactStoreResource):
    """Evidence as files on local disk (the embedded default); links are file:// URIs."""

    root: str = Field(description="Folder holding every env's artifacts.")
    file_mode: str = Field(
        "0600", description="Permissions of evidence files, octal (0640 for a group)."
    )
    dir_mode: str = Field(
        "0700", description="Permissions of evidence folders, octal (0750 for a group)."
    )

    @model_validator(mode="after")
    def _private_modes(self) -> "LocalArtifactStoreResource":
        # Refused when the resource set is built, at start-up, not at the first write.
        check_modes(parse_mode(self.file_mode), parse_mode(self.dir_mode))
        return self

    def get_store(self) -> LocalArtifactStore:
        store = LocalArtifactStore(
            self.root,
            env=self.env,
            ttl_days=self.ttl_days,
            file_mode=self.file_mode,
            dir_mode=self.dir_mode,
        )
        store.console_url = self.console_url
        return store

    def location(self) -> str:
        return str(Path(self.root).resolve() / self.env)


class S3ArtifactStoreResource(ArtifactStoreResource):
    """Evidence in an S3 bucket, expired by a lifecycle rule; links are presigned GETs.

    Endpoint, region and credentials come from the nested dagster-aws `S3Resource` (secrets
    through EnvVar). The client is built with short timeouts so an unreachable store fails a job
    fast (retried later) instead of stalling a worker.
    """

    s3: S3Resource
    bucket: str = Field(description="Bucket name; every env keeps its own prefix inside it.")
    presign_expiry_s: int = Field(
        MAX_PRESIGN_EXPIRY_S,
        ge=1,
        le=MAX_PRESIGN_EXPIRY_S,
        description="Lifetime of links in metadata and the CRM (S3 allows at most 7 days).",
    )
    connect_timeout_s: float = Field(2.0, gt=0, description="TCP connect timeout per request.")
    read_timeout_s: float = Field(30.0, gt=0, description="Read timeout per request.")
    max_attempts: int = Field(3, ge=1, description="Tries per request, the first included.")
    ensure_bucket: bool = Field(
        True,
        description="Create the bucket if missing and install this env's lifecycle (TTL) rule "
        "on first use. Turn off where the bucket is provisioned elsewhere.",
    )

    _store: S3ArtifactStore | None = PrivateAttr(default=None)

    def get_store(self) -> S3ArtifactStore:
        if self._store is None:
            store = S3ArtifactStore.from_endpoint(
                self.s3.endpoint_url,
                self.bucket,
                env=self.env,
                ttl_days=self.ttl_days,
                presign_expiry_s=self.presign_expiry_s,
                region_name=self.s3.region_name or "us-east-1",
                aws_access_key_id=self.s3.aws_access_key_id,
                aws_secret_access_key=self.s3.aws_secret_access_key,
                aws_session_token=self.s3.aws_session_token,
                connect_timeout_s=self.connect_timeout_s,
                read_timeout_s=self.read_timeout_s,
                max_attempts=self.max_attempts,
            )
            if self.ensure_bucket:
                store.ensure_bucket()
            self._store = store
        self._store.console_url = self.console_url
        return self._store

    def location(self) -> str:
        return f"s3://{self.bucket}/{self.env}/"


class BrowserResource(ConfigurableResource):
    """Playwright worker settings: the browser, contexts per worker, leases, budgets, evidence.

    Run config (the launchpad) may lower the context cap per run; everything else is deployment
    configuration. What proof an attempt keeps is `EvidenceSettings`: `evidence` holds only the
    fields a deployment changes, so the defaults and their meaning live in one place.
    """

    home: str = Field(description="Working folder of workers (Playwright's ffmpeg link, scratch).")
    executable_path: str | None = Field(
        None, description="Browser binary; None: the headless shell, else the full Chromium."
    )
    browsers_path: str | None = Field(
        None, description="PLAYWRIGHT_BROWSERS_PATH for the driver; None: home/pw-browsers."
    )
    headless: bool = True
    context_cap: int = Field(
        3, ge=1, le=16, description="Concurrent contexts per worker (1-2 per vCPU is stable)."
    )
    lease_s: float = Field(180.0, gt=0, description="Lease per claimed job; heartbeats renew it.")
    session_reuse_s: float = Field(
        600.0, ge=0, description="Reuse a dealer's logged-in session this long (0: never)."
    )
    job_timeout_s: float = Field(120.0, gt=0, description="Hard timeout of one attempt.")
    driver: str = Field(
        "run",
        pattern="^(run|fleet)$",
        description="Who drives the browsers: run (the nightly run's worker ops) or fleet (a "
        "worker Deployment; the run only enqueues and observes). SUBMISSIONS_BROWSER_DRIVER.",
    )
    evidence: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of EvidenceSettings (trace, trace_snapshots_on_retry, video, "
        "video_sample_rate), e.g. {'video': 'off'}.",
    )

    def evidence_settings(self) -> EvidenceSettings:
        """The evidence each attempt keeps: EvidenceSettings' defaults plus `evidence`."""
        return EvidenceSettings.model_validate(self.evidence)

    def batch_config(self, **batch: Any) -> BatchConfig:
        """A worker's BatchConfig: these settings plus the batch's own fields (oem, run_id, …).

        `context_cap` and `lease_s` among the batch fields override the deployment's for this
        batch.
        """
        context_cap = batch.pop("context_cap", None) or self.context_cap
        batch.setdefault("lease_s", self.lease_s)
        browser: dict[str, Any] = {
            "headless": self.headless,
            "context_cap": context_cap,
            "session_reuse_s": self.session_reuse_s,
        }
        if self.executable_path:
            browser["executable_path"] = self.executable_path
        if self.browsers_path:
            browser["browsers_path"] = self.browsers_path
        return BatchConfig(
            browser=BrowserSettings(**browser),
            budgets=StepBudgets(job_s=self.job_timeout_s),
            evidence=self.evidence_settings(),
            **batch,
        )


class CredentialsResource(ConfigurableResource):
    """Dealer portal credentials as JSON ``{oem: {dealer_id: {username, password, …}}}``.

    Secrets reach Dagster only through EnvVar (`credentials_json=EnvVar("SUBMISSIONS_CREDENTIALS")`)
    or a mounted secret file, never as literal config: Dagster shows literal config in the UI.
    With neither set there are no credentials (every login fails as an auth failure).
    """

    credentials_json: str | None = Field(None, description="Inline JSON; only through EnvVar.")
    credentials_file: str | None = Field(None, description="Path of a JSON secret file.")

    def get_provider(self) -> CredentialProvider:
        """The provider workers ask for one dealer's login."""
        if self.credentials_json:
            return JsonCredentialProvider(json.loads(self.credentials_json))
        if self.credentials_file:
            return JsonCredentialProvider(json.loads(Path(self.credentials_file).read_text()))
        return JsonCredentialProvider({})


class PortalsResource(ConfigurableResource):
    """Where each OEM's dealer portal lives (the sandbox's addresses on the embedded default)."""

    urls: dict[str, str] = Field(description="OEM key -> base URL of its portal.")

    def url_map(self) -> dict[str, str]:
        """OEM key -> base URL, as the runner takes it."""
        return dict(self.urls)


def runner_deps(
    *,
    job_store: JobStoreResource,
    artifacts: ArtifactStoreResource,
    credentials: CredentialsResource,
    portals: PortalsResource,
    browser: BrowserResource,
    adapters: dict[str, PortalAdapter],
) -> RunnerDeps:
    """A worker's dependencies from the resources: the one way both a Dagster worker op and
    `submissions worker` / `run-batch` get them, so the two can never pick differently."""
    return RunnerDeps(
        store=job_store.get_store(),
        artifacts=artifacts.get_store(),
        credentials=credentials.get_provider(),
        adapters=adapters,
        portal_urls=portals.url_map(),
        home=Path(browser.home),
    )
