"""Builds a worker's dependencies from settings, for the CLI and long-running workers."""

from __future__ import annotations

from submissions_pipeline.artifacts import ArtifactStore, LocalArtifactStore, S3ArtifactStore
from submissions_pipeline.credentials import CredentialProvider, JsonCredentialProvider
from submissions_pipeline.runner.adapter import PortalAdapter
from submissions_pipeline.runner.deps import RunnerDeps
from submissions_pipeline.settings import Settings
from submissions_pipeline.store import JobStore


def artifact_store_from_settings(settings: Settings) -> ArtifactStore:
    """S3 when a bucket is configured, else local disk under SUBMISSIONS_HOME."""
    if settings.s3_bucket:
        store = S3ArtifactStore.from_endpoint(
            settings.s3_endpoint,
            settings.s3_bucket,
            env=settings.env,
            ttl_days=settings.artifact_ttl_days,
        )
        store.ensure_bucket()
        return store
    return LocalArtifactStore(
        settings.artifacts_dir, env=settings.env, ttl_days=settings.artifact_ttl_days
    )


def deps_from_settings(
    settings: Settings,
    adapters: dict[str, PortalAdapter],
    credentials: CredentialProvider | None = None,
) -> RunnerDeps:
    """Everything a worker needs, chosen by configuration alone."""
    return RunnerDeps(
        store=JobStore.from_url(settings.db_url),
        artifacts=artifact_store_from_settings(settings),
        credentials=credentials or JsonCredentialProvider.from_env(),
        adapters=adapters,
        portal_urls=settings.portal_urls,
        home=settings.home,
    )
