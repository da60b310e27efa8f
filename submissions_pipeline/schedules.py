"""The jobs ops teams launch and the schedules that launch them: one off-hours nightly per OEM.

A schedule only starts a run for one OEM partition; the run's `crm_cases` step enqueues and its
workers pull from the queue (the schedule only starts work; it never does it). "Run now" is a launch
of `submissions_nightly` for a partition from the UI; a backfill over OEM partitions is the
same job, and its `crm_cases` step also re-drives retryable dead letters.
"""

import os

from dagster import (
    AssetSelection,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    multiprocess_executor,
    schedule,
)

from submissions_pipeline.assets import (
    SUBMISSION_ASSETS,
    crm_updates,
    evidence_bundles,
    submission_report,
)
from submissions_pipeline.assets.partitions import (
    NIGHTLY_JOB_NAME,
    OEM_TAG,
    PARTITION_TAG,
    REPORT_JOB_NAME,
    TRIGGER_TAG,
    WRITEBACK_JOB_NAME,
    daily_run_request,
    nightly_timing,
)
from submissions_pipeline.evidence_purge import daily_evidence_purge, evidence_ttl_purge
from submissions_pipeline.oems import oem_registry

#: Steps one run executes at once. Workers are further capped by the `browser` pool across
#: runs; each step is its own process, so this stays near the core count.
MAX_CONCURRENT_STEPS = max(2, min(4, os.cpu_count() or 2))

#: Step processes fork from a server that has imported the definitions once, instead of each
#: starting Python and importing Dagster, Playwright and the definitions anew (1-1.5 s of CPU
#: per step, and a run has a dozen steps with its checks): what makes the daemon's runs cheap.
STEP_EXECUTOR = multiprocess_executor.configured(
    {"max_concurrent": MAX_CONCURRENT_STEPS, "start_method": {"forkserver": {}}}
)

#: When the cross-OEM report is built: after every OEM's nightly, before business hours.
REPORT_CRON, REPORT_TIMEZONE = "0 6 * * *", "UTC"

#: Runs of an OEM that are still going: a new one would only queue behind them.
ACTIVE_RUN_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def active_run(instance: DagsterInstance, oem: str) -> bool:
    """Whether the OEM has a run queued or going. Every trigger launches the same job, whose
    intake reads all new cases and whose workers pull every due job, so a second run for the
    OEM would only queue behind the first and find nothing left to do."""
    runs = instance.get_run_records(
        RunsFilter(tags={PARTITION_TAG: oem}, statuses=ACTIVE_RUN_STATUSES), limit=1
    )
    return bool(runs)


nightly_job = define_asset_job(
    NIGHTLY_JOB_NAME,
    selection=AssetSelection.assets(*SUBMISSION_ASSETS),
    executor_def=STEP_EXECUTOR,
    description="One OEM end to end: read and enqueue CRM cases, run browser workers, bundle "
    "and verify evidence, write outcomes back to the CRM (with every check).",
)

writeback_job = define_asset_job(
    WRITEBACK_JOB_NAME,
    selection=AssetSelection.assets(evidence_bundles, crm_updates),
    description="One OEM's proven and failed jobs bundled and written back to the CRM, without "
    "touching a browser: what a run whose CRM write-back failed left behind.",
)

report_job = define_asset_job(
    REPORT_JOB_NAME,
    selection=AssetSelection.assets(submission_report),
    description="The cross-OEM submission report.",
)


def nightly_schedule(oem: str) -> ScheduleDefinition:
    """The OEM's off-hours schedule, at its adapter's `nightly_cron` in its `timezone`."""
    cron, tz = nightly_timing(oem)

    @schedule(
        name=f"nightly_{oem}",
        cron_schedule=cron,
        execution_timezone=tz,
        job=nightly_job,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"{oem}: the nightly batch at {cron} ({tz}).",
    )
    def _nightly(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        # (a context built in a test may come without an instance)
        if context.instance_ref is not None and active_run(context.instance, oem):
            return SkipReason(f"{oem}: a run is already queued or going; it does this work")
        return RunRequest(
            run_key=f"nightly:{oem}:{context.scheduled_execution_time:%Y-%m-%dT%H:%M%z}",
            partition_key=oem,
            tags={OEM_TAG: oem, TRIGGER_TAG: "nightly"},
        )

    return _nightly


@schedule(
    name="morning_report",
    cron_schedule=REPORT_CRON,
    execution_timezone=REPORT_TIMEZONE,
    job=report_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="The cross-OEM report, before business hours.",
)
def morning_report(context: ScheduleEvaluationContext) -> RunRequest:
    return daily_run_request(context, "report", "morning_report")


NIGHTLY_SCHEDULES = [nightly_schedule(oem) for oem in oem_registry().oem_keys()]
ALL_SCHEDULES = [*NIGHTLY_SCHEDULES, morning_report, daily_evidence_purge]
ALL_JOBS = [nightly_job, writeback_job, report_job, evidence_ttl_purge]
