"""The resource set of each environment, built from the settings: the one choice of systems.

`SUBMISSIONS_ENV` (dev | stage | prod) picks a whole set; inside it each system's choice (local
disk or S3 for evidence, …) is a field of the settings. Dagster's definitions and the CLI's
workers (`submissions worker`, `run-batch`) both take their resources from here, so they never
disagree. Values that may carry a secret reach Dagster as `EnvVar` when they came from the
environment, so its UI shows the variable's name, never the value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster import EnvVar, build_resources
from dagster_aws.s3 import S3PickleIOManager, S3Resource

from submissions_pipeline.crm import CrmClient
from submissions_pipeline.links import job_pages_base
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.resources import (
    ArtifactStoreResource,
    BrowserResource,
    CredentialsResource,
    EmbeddedCrmResource,
    JobStoreResource,
    LocalArtifactStoreResource,
    PortalsResource,
    S3ArtifactStoreResource,
    SalesforceCrmResource,
    WebhooksResource,
    runner_deps,
)
from submissions_pipeline.runner import RunnerDeps
from submissions_pipeline.settings import Settings
from submissions_pipeline.store import JobStore

#: The resources a browser worker needs (a subset of every set).
WORKER_RESOURCES = ("job_store", "artifacts", "credentials", "portals", "browser")


def _secret(settings: Settings, field: str, value: Any) -> Any:
    return EnvVar(f"SUBMISSIONS_{field.upper()}") if settings.from_environment(field) else value


def _credentials(settings: Settings) -> CredentialsResource:
    if settings.credentials is not None:
        value = settings.credentials.get_secret_value()
        return CredentialsResource(credentials_json=_secret(settings, "credentials", value))
    if settings.credentials_file is not None:
        path = str(settings.credentials_file)
        return CredentialsResource(credentials_file=_secret(settings, "credentials_file", path))
    return CredentialsResource()


def _artifacts(settings: Settings) -> ArtifactStoreResource:
    if settings.artifacts == "s3":
        return S3ArtifactStoreResource(
            s3=_s3(settings),
            bucket=settings.s3_bucket or "",
            env=settings.env,
            ttl_days=settings.artifact_ttl_days,
            presign_expiry_s=settings.presign_expiry_s,
            console_url=settings.console_url,
        )
    return LocalArtifactStoreResource(
        root=str(settings.artifacts_dir),
        env=settings.env,
        ttl_days=settings.artifact_ttl_days,
        file_mode=settings.artifact_file_mode,
        dir_mode=settings.artifact_dir_mode,
        console_url=settings.console_url,
    )


def _crm(settings: Settings, db_url: Any) -> Any:
    """The CRM the settings choose (SUBMISSIONS_CRM), embedded by default."""
    if settings.crm != "salesforce":
        return EmbeddedCrmResource(db_url=db_url)
    key, secret = settings.salesforce_private_key, settings.salesforce_client_secret
    optional = {
        "client_secret": _secret(settings, "salesforce_client_secret", secret.get_secret_value())
        if secret
        else None,
        "private_key": _secret(settings, "salesforce_private_key", key.get_secret_value())
        if key
        else None,
        "private_key_file": str(settings.salesforce_private_key_file)
        if settings.salesforce_private_key_file
        else None,
        "username": settings.salesforce_username,
        "case_object": settings.salesforce_object,
        "mapping_file": str(settings.salesforce_mapping_file)
        if settings.salesforce_mapping_file
        else None,
        "ca_file": str(settings.salesforce_ca_file) if settings.salesforce_ca_file else None,
        "integration_user_id": settings.salesforce_integration_user_id,
    }
    return SalesforceCrmResource(
        token_url=settings.salesforce_token_url,
        auth_flow=settings.salesforce_auth_flow,
        client_id=settings.salesforce_client_id or "",
        api_version=settings.salesforce_api_version,
        **{k: v for k, v in optional.items() if v is not None},
    )


def _webhooks(settings: Settings) -> WebhooksResource:
    document = settings.webhook_subscriptions
    return WebhooksResource(
        subscriptions_json=_secret(
            settings,
            "webhook_subscriptions",
            document.get_secret_value() if document is not None else "",
        ),
        evidence_base_url=job_pages_base(settings.console_url),
        max_attempts=settings.webhook_max_attempts,
        backoff_s=settings.webhook_backoff_s,
        backoff_max_s=settings.webhook_backoff_max_s,
        retention_days=settings.webhook_retention_days,
    )


def _s3(settings: Settings) -> S3Resource:
    return S3Resource(region_name=settings.aws_region, endpoint_url=settings.s3_endpoint)


def resource_set(
    settings: Settings,
    *,
    portal_urls: Mapping[str, str] | None = None,
    credentials_file: str | None = None,
) -> dict[str, Any]:
    """Every resource of the environment `settings.env` names.

    Outside dev a missing database, portal address, bucket or credentials file is an error
    naming the variable, raised here, at start-up. `portal_urls` and `credentials_file` override
    the settings (the demo passes the sandbox's free ports and the file of its accounts).
    """
    settings.require_deployable()
    db_url = _secret(settings, "db_url", settings.database_url)
    resources: dict[str, Any] = {
        "job_store": JobStoreResource(db_url=db_url, retry_time_scale=settings.retry_time_scale),
        "crm": _crm(settings, db_url),
        "artifacts": _artifacts(settings),
        "browser": BrowserResource(
            home=str(settings.home),
            executable_path=settings.chromium,
            browsers_path=str(settings.browsers_path),
            context_cap=settings.context_cap,
            driver=settings.browser_driver,
        ),
        "credentials": CredentialsResource(credentials_file=credentials_file)
        if credentials_file
        else _credentials(settings),
        "portals": PortalsResource(urls=dict(portal_urls or settings.portals)),
        "webhooks": _webhooks(settings),
    }
    if settings.env != "dev":
        # Runs execute on several machines: step outputs go to the bucket, not a local disk.
        resources["io_manager"] = S3PickleIOManager(
            s3_resource=_s3(settings),
            s3_bucket=settings.s3_bucket or "",
            s3_prefix=f"{settings.env}/dagster",
        )
    return resources


@contextmanager
def worker_dependencies(
    settings: Settings, oems: list[str] | None = None
) -> Iterator[tuple[RunnerDeps, BrowserResource]]:
    """A CLI worker's dependencies from the same resource set Dagster uses, initialised outside
    Dagster (EnvVar values resolved) and torn down afterwards; with the browser settings."""
    resources = resource_set(settings)
    registry = oem_registry(settings.adapters_dir)
    with build_resources({k: resources[k] for k in WORKER_RESOURCES}) as r:
        yield (
            runner_deps(
                job_store=r.job_store,
                artifacts=r.artifacts,
                credentials=r.credentials,
                portals=r.portals,
                browser=r.browser,
                adapters=registry.load_adapters(oems),
            ),
            r.browser,
        )


@contextmanager
def job_store_and_crm(settings: Settings) -> Iterator[tuple[JobStore, CrmClient]]:
    """The environment's job store and CRM client, for commands run outside Dagster."""
    resources = resource_set(settings)
    with build_resources({k: resources[k] for k in ("job_store", "crm")}) as r:
        yield r.job_store.get_store(), r.crm.get_client()
