"""The one place that assembles the Dagster Definitions, with the resource set of the environment.

`SUBMISSIONS_ENV` (dev | stage | prod, default dev) picks a whole resource set; nothing else in
the code asks which environment it is in. dev is the embedded default: SQLite under
SUBMISSIONS_HOME, the embedded CRM, evidence on local disk, the sandbox portals. stage and prod
use PostgreSQL, S3 (evidence with a TTL, presigned links, and Dagster's own IO) and the real
portals, all from environment variables; secrets only ever arrive through `EnvVar` or a mounted
secret file, so Dagster never shows them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from dagster import Definitions, EnvVar
from dagster_aws.s3 import S3PickleIOManager, S3Resource

from submissions_pipeline.assets import ALL_ASSETS
from submissions_pipeline.checks import ALL_CHECKS
from submissions_pipeline.resources import (
    BrowserResource,
    CredentialsResource,
    EmbeddedCrmResource,
    JobStoreResource,
    LocalArtifactStoreResource,
    PortalsResource,
    S3ArtifactStoreResource,
)
from submissions_pipeline.schedules import ALL_JOBS, ALL_SCHEDULES
from submissions_pipeline.sensors import ALL_SENSORS
from submissions_pipeline.settings import load_settings

ENV_VAR = "SUBMISSIONS_ENV"
DEFAULT_ENV = "dev"


def _db_url() -> Any:
    # A URL set in the environment may carry a password: pass it as EnvVar, never as text.
    return EnvVar("SUBMISSIONS_DB_URL") if os.environ.get("SUBMISSIONS_DB_URL") else None


def dev_resources(
    *,
    portal_urls: Mapping[str, str] | None = None,
    credentials_file: str | None = None,
) -> dict[str, Any]:
    """The embedded default: SQLite (or SUBMISSIONS_DB_URL), embedded CRM, local disk, sandbox.

    `portal_urls` and `credentials_file` override the environment (the demo passes the
    sandbox's free ports and the file it wrote the sandbox accounts to).
    """
    settings = load_settings()
    db_url = _db_url() or settings.db_url
    return {
        "job_store": JobStoreResource(db_url=db_url),
        "crm": EmbeddedCrmResource(db_url=db_url),
        "artifacts": LocalArtifactStoreResource(
            root=str(settings.artifacts_dir),
            env="dev",
            ttl_days=settings.artifact_ttl_days,
        ),
        "browser": BrowserResource(home=str(settings.home)),
        "credentials": CredentialsResource(credentials_file=credentials_file)
        if credentials_file
        else CredentialsResource(),
        "portals": PortalsResource(urls=dict(portal_urls or settings.portal_urls)),
    }


def _required_json(name: str) -> dict[str, str]:
    raw = os.environ.get(name)
    if not raw:
        raise RuntimeError(f"{name} must be set (JSON object {{oem: base URL}}) outside dev")
    return json.loads(raw)


def deployed_resources(env: str) -> dict[str, Any]:
    """stage and prod: identical shape, different values, all from the environment.

    Required: SUBMISSIONS_DB_URL, SUBMISSIONS_S3_BUCKET, SUBMISSIONS_PORTAL_URLS, and
    SUBMISSIONS_CREDENTIALS_FILE (a mounted secret). Optional: AWS_REGION,
    SUBMISSIONS_S3_ENDPOINT (an S3-compatible server), SUBMISSIONS_ARTIFACT_TTL_DAYS,
    SUBMISSIONS_CONTEXT_CAP. AWS credentials come from boto3's usual chain (an IAM role, or
    AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment).
    """
    settings = load_settings()
    s3 = S3Resource(
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        endpoint_url=os.environ.get("SUBMISSIONS_S3_ENDPOINT") or None,
    )
    return {
        "job_store": JobStoreResource(db_url=EnvVar("SUBMISSIONS_DB_URL")),
        "crm": EmbeddedCrmResource(db_url=EnvVar("SUBMISSIONS_DB_URL")),
        "artifacts": S3ArtifactStoreResource(
            s3=s3,
            bucket=EnvVar("SUBMISSIONS_S3_BUCKET"),
            env=env,
            ttl_days=settings.artifact_ttl_days,
        ),
        "browser": BrowserResource(
            home=str(settings.home),
            context_cap=int(os.environ.get("SUBMISSIONS_CONTEXT_CAP", "2")),
        ),
        "credentials": CredentialsResource(credentials_file=EnvVar("SUBMISSIONS_CREDENTIALS_FILE")),
        "portals": PortalsResource(urls=_required_json("SUBMISSIONS_PORTAL_URLS")),
        # Runs execute on several machines: step outputs go to the bucket, not a local disk.
        "io_manager": S3PickleIOManager(
            s3_resource=s3, s3_bucket=EnvVar("SUBMISSIONS_S3_BUCKET"), s3_prefix=f"{env}/dagster"
        ),
    }


#: Environment -> its whole resource set.
RESOURCE_SETS: dict[str, Callable[[], dict[str, Any]]] = {
    "dev": dev_resources,
    "stage": lambda: deployed_resources("stage"),
    "prod": lambda: deployed_resources("prod"),
}


def current_env() -> str:
    """The environment named by SUBMISSIONS_ENV (default dev)."""
    env = os.environ.get(ENV_VAR, DEFAULT_ENV)
    if env not in RESOURCE_SETS:
        raise ValueError(f"{ENV_VAR}={env!r}: expected one of {sorted(RESOURCE_SETS)}")
    return env


def build_definitions(resources: Mapping[str, Any]) -> Definitions:
    """Every asset, check, job, schedule and sensor, bound to one resource set."""
    return Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=ALL_JOBS,
        schedules=ALL_SCHEDULES,
        sensors=ALL_SENSORS,
        resources=dict(resources),
    )


defs = build_definitions(RESOURCE_SETS[current_env()]())
