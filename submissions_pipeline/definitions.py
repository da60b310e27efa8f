"""The one place that assembles the Dagster Definitions, bound to the environment's resource set.

`SUBMISSIONS_ENV` (dev | stage | prod, default dev) picks a whole resource set in
`resource_sets.py`; nothing else in the code asks which environment it is in. dev is the
embedded default: SQLite under SUBMISSIONS_HOME, the embedded CRM, evidence on local disk, the
sandbox portals. stage and prod use PostgreSQL, S3 (evidence with a TTL and Dagster's own IO)
and the real portals; a missing variable stops the code location from loading, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import Definitions

from submissions_pipeline.assets import ALL_ASSETS
from submissions_pipeline.checks import ALL_CHECKS
from submissions_pipeline.resource_sets import resource_set
from submissions_pipeline.resources import WebhooksResource
from submissions_pipeline.schedules import ALL_JOBS, ALL_SCHEDULES
from submissions_pipeline.sensors import ALL_SENSORS
from submissions_pipeline.settings import load_settings


def build_definitions(resources: Mapping[str, Any]) -> Definitions:
    """Every asset, check, job, schedule and sensor, bound to one resource set."""
    return Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=ALL_JOBS,
        schedules=ALL_SCHEDULES,
        sensors=ALL_SENSORS,
        # Without subscriptions the outbox still fills; nothing is delivered until some exist.
        resources={"webhooks": WebhooksResource(), **resources},
    )


defs = build_definitions(resource_set(load_settings()))
