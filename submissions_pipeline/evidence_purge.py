"""The evidence TTL where storage has no lifecycle engine: a daily job that purges expired files.

S3 expires evidence with its bucket lifecycle rule; local disk has nothing of the kind, so
this job calls the artifact store's `purge_expired` once a day. Each attempt's manifest and
bundle stay (see `KEPT_PAST_TTL`): the console then shows "evidence expired" with the
manifest of what was there. On S3 the same job deletes nothing and says so.
"""

from datetime import UTC, datetime

from dagster import (
    DefaultScheduleStatus,
    OpExecutionContext,
    Output,
    RunRequest,
    ScheduleEvaluationContext,
    job,
    op,
    schedule,
)

from submissions_pipeline.assets.partitions import daily_run_request
from submissions_pipeline.resources import ArtifactStoreResource

EVIDENCE_PURGE_JOB_NAME = "evidence_ttl_purge"
#: Daily, after the nightlies and the morning report have read yesterday's evidence.
PURGE_CRON, PURGE_TIMEZONE = "30 7 * * *", "UTC"


@op(description="Delete evidence older than the store's TTL (manifests and bundles kept).")
def purge_expired_evidence(
    context: OpExecutionContext, artifacts: ArtifactStoreResource
) -> Output[int]:
    store = artifacts.get_store()
    deleted = store.purge_expired(datetime.now(UTC))
    context.log.info(
        f"{deleted} evidence files past the {store.ttl_days}-day TTL deleted from "
        f"{type(store).__name__} (env {store.env}); manifests and bundles kept"
    )
    return Output(deleted, metadata={"deleted": deleted, "ttl_days": store.ttl_days})


@job(
    name=EVIDENCE_PURGE_JOB_NAME,
    description="Enforce the evidence TTL on local disk: delete expired screenshots, traces and "
    "videos, keep each attempt's manifest so the console can show what expired.",
)
def evidence_ttl_purge() -> None:
    purge_expired_evidence()


@schedule(
    name="daily_evidence_purge",
    cron_schedule=PURGE_CRON,
    execution_timezone=PURGE_TIMEZONE,
    job=evidence_ttl_purge,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Once a day: evidence past its TTL is purged (local disk; S3 has its rule).",
)
def daily_evidence_purge(context: ScheduleEvaluationContext) -> RunRequest:
    return daily_run_request(context, "purge", "evidence_purge")
