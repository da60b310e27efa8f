"""The OEM partitions every submission asset shares, and the names runs and actors carry."""

from __future__ import annotations

import itertools
import logging
import time
from functools import cache
from importlib import import_module

from dagster import StaticPartitionsDefinition
from dagster._utils.schedules import cron_string_iterator

from adapters import REGISTRY, oem_keys
from submissions_pipeline.runner.adapter import PortalAdapter

log = logging.getLogger(__name__)

#: One partition per OEM with an adapter; the keys come from the adapter registry.
oem_partitions = StaticPartitionsDefinition(oem_keys())

#: Name of the job that materializes crm_cases -> submission_runs -> evidence_bundles ->
#: crm_updates for one OEM partition (nightly schedules, sensors, backfills, "Run now").
NIGHTLY_JOB_NAME = "submissions_nightly"
REPORT_JOB_NAME = "submission_report_job"

#: Run tags. Dagster adds `dagster/partition` (the OEM) to every partitioned run, which is what
#: dagster.yaml's one-run-per-OEM limit keys on; `oem` is for people filtering the runs page.
OEM_TAG = "oem"
TRIGGER_TAG = "submissions/trigger"
PARTITION_TAG = "dagster/partition"
BACKFILL_TAG = "dagster/backfill"


def run_actor(run_id: str, step: str) -> str:
    """Who a Dagster step is in the job store's event history: `dagster:<run_id>:<step>`."""
    return f"dagster:{run_id}:{step}"


def worker_id(run_id: str, oem: str, index: int) -> str:
    """Lease owner of one batch op; the run id inside lets sensors find a failed run's jobs."""
    return f"dagster:{run_id}:{oem}:w{index}"


@cache
def nightly_timing(oem: str) -> tuple[str, str]:
    """The OEM's nightly (cron, timezone), from its adapter class's attributes.

    An adapter that cannot be imported falls back to the PortalAdapter defaults with a warning,
    so one broken adapter does not take the whole code location (and its reaper) down; its
    runs fail loudly in the batch op instead.
    """
    module, _, name = REGISTRY[oem].partition(":")
    try:
        cls = getattr(import_module(module), name)
    except (ImportError, AttributeError) as exc:
        log.warning("adapter %s not importable (%s): default nightly schedule", oem, exc)
        cls = PortalAdapter
    return cls.nightly_cron, cls.timezone


def schedule_interval_s(oem: str) -> float:
    """The longest gap between two of the OEM's scheduled runs over the next week (24 h for a
    nightly cron); queue age is judged against it."""
    cron, tz = nightly_timing(oem)
    ticks = cron_string_iterator(time.time(), cron, tz)
    times = [next(ticks) for _ in range(8)]
    return max((b - a).total_seconds() for a, b in itertools.pairwise(times))
