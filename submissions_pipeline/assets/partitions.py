"""The OEM partitions every submission asset shares, and the names runs and actors carry."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter
from dagster import RunRequest, ScheduleEvaluationContext, StaticPartitionsDefinition

from submissions_pipeline.oems import oem_registry

#: One partition per registered OEM; the keys come from the adapters folder's registry.
oem_partitions = StaticPartitionsDefinition(oem_registry().oem_keys())

#: Name of the job that materializes crm_cases -> submission_runs -> evidence_bundles ->
#: crm_updates for one OEM partition (nightly schedules, sensors, backfills, "Run now").
NIGHTLY_JOB_NAME = "submissions_nightly"
REPORT_JOB_NAME = "submission_report_job"
#: Evidence bundles and CRM updates only, for outcomes a run left unwritten.
WRITEBACK_JOB_NAME = "crm_writeback"

#: Run tags. Dagster adds `dagster/partition` (the OEM) to every partitioned run, which is what
#: dagster.yaml's one-run-per-OEM limit keys on; `oem` is for people filtering the runs page.
OEM_TAG = "oem"
TRIGGER_TAG = "submissions/trigger"
PARTITION_TAG = "dagster/partition"
BACKFILL_TAG = "dagster/backfill"


def run_actor(run_id: str, step: str) -> str:
    """Who a Dagster step is in the job store's event history: `dagster:<run_id>:<step>`."""
    return f"dagster:{run_id}:{step}"


def daily_run_request(
    context: ScheduleEvaluationContext, key_prefix: str, trigger: str
) -> RunRequest:
    """A once-a-day schedule's run, keyed by its scheduled date so a tick never starts two."""
    return RunRequest(
        run_key=f"{key_prefix}:{context.scheduled_execution_time:%Y-%m-%d}",
        tags={TRIGGER_TAG: trigger},
    )


def worker_id(run_id: str, oem: str, index: int) -> str:
    """Lease owner of one batch op; the run id inside lets sensors find a failed run's jobs."""
    return f"dagster:{run_id}:{oem}:w{index}"


def nightly_timing(oem: str) -> tuple[str, str]:
    """The OEM's nightly (cron, timezone), from its settings file."""
    schedule = oem_registry().settings(oem).schedule
    return schedule.nightly_cron, schedule.timezone


def schedule_interval_s(oem: str, now: datetime | None = None) -> float:
    """The longest gap between two of the OEM's scheduled runs over the next week (24 h for a
    nightly cron); queue age is judged against it."""
    cron, tz = nightly_timing(oem)
    start = (now or datetime.now(UTC)).astimezone(ZoneInfo(tz))
    ticks = croniter(cron, start)
    times = [ticks.get_next(datetime) for _ in range(8)]
    return max((b - a).total_seconds() for a, b in itertools.pairwise(times))
