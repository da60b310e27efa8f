"""Dagster sensors of the webhook API: run-now requests become runs, the outbox is delivered,
and a finished night is announced.

Run-now requests are read after the sensor's cursor (their sequence) and each becomes one run
keyed by its request id, so a request starts one run however often the sensor looks.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_status_sensor,
    sensor,
)

from submissions_pipeline.api.app import RUN_NOW
from submissions_pipeline.assets.partitions import OEM_TAG, PARTITION_TAG, TRIGGER_TAG
from submissions_pipeline.assets.submission_runs import PriorityOrder
from submissions_pipeline.domain import Job, SubmissionState
from submissions_pipeline.domain.oem import OemSchedule
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.resources import JobStoreResource, WebhooksResource
from submissions_pipeline.schedules import nightly_job
from submissions_pipeline.store import JobStore
from submissions_pipeline.store.api_requests import ApiRequest

S = SubmissionState
#: Jobs the automation still owes an outcome: what "done by morning" counts.
OPEN_STATES = (S.QUEUED, S.RUNNING, S.SUBMITTED, S.RETRY_SCHEDULED, S.NEEDS_RECONCILIATION)

REQUEST_TAG = "submissions/api_request"


def run_now_run_config(params: dict[str, Any]) -> dict[str, Any]:
    """The launch's run config for a run-now request's batch parameters."""
    config: dict[str, Any] = {}
    if "max_jobs" in params:
        config["max_jobs"] = int(params["max_jobs"])
    if "priority_order" in params:
        # Dagster's config names an enum member by its name.
        config["priority_order"] = PriorityOrder(params["priority_order"]).name
    if not config:
        return {}
    return {"ops": {"submission_runs": {"ops": {"plan_workers": {"config": config}}}}}


def run_now_request(request: ApiRequest) -> RunRequest:
    """The one run a run-now request starts: its request id is the run key."""
    return RunRequest(
        run_key=request.request_id,
        partition_key=request.oem,
        run_config=run_now_run_config(request.params),
        tags={
            OEM_TAG: request.oem or "",
            TRIGGER_TAG: "api_run_now",
            REQUEST_TAG: request.request_id,
        },
    )


@sensor(
    job=nightly_job,
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts one run per signed run-now request the API accepted (the request id "
    "is the run key, so a request never starts two).",
)
def run_now_requests_sensor(
    context: SensorEvaluationContext, job_store: JobStoreResource
) -> SensorResult:
    after = int(context.cursor) if (context.cursor or "").isdigit() else 0
    pending = job_store.get_store().api_requests_after(after, kind=RUN_NOW)
    registered = set(oem_registry().oem_keys())
    requests = [run_now_request(r) for r in pending if r.oem in registered]
    cursor = max([after, *(r.sequence for r in pending)])
    return SensorResult(
        run_requests=requests,
        cursor=str(cursor),
        skip_reason=None if requests else SkipReason("no run-now requests"),
    )


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Delivers the webhook outbox: signs each event, retries with backoff, marks "
    "dead after the budget, purges delivered events after the retention.",
)
def webhook_dispatch_sensor(
    context: SensorEvaluationContext, job_store: JobStoreResource, webhooks: WebhooksResource
) -> SkipReason:
    dispatcher = webhooks.dispatcher(job_store.get_store())
    try:
        report = dispatcher.dispatch_once()
    finally:
        dispatcher.close()
    return SkipReason(
        f"fanned out {report.fanned_out}, delivered {report.delivered}, "
        f"retrying {report.retrying}, dead {report.dead}, purged {report.purged}"
    )


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[nightly_job],
    default_status=DefaultSensorStatus.RUNNING,
    description="Writes a `run.finished` notification with the run's summary (once per run).",
)
def run_finished_notification_sensor(
    context: RunStatusSensorContext, job_store: JobStoreResource
) -> None:
    run = context.dagster_run
    store = job_store.get_store()
    jobs = store.list_jobs(run_id=run.run_id)
    store.record_notification(
        "run.finished",
        run.run_id,
        oem=run.tags.get(PARTITION_TAG),
        data={
            "run_id": run.run_id,
            "trigger": run.tags.get(TRIGGER_TAG),
            "jobs": len(jobs),
            "by_state": dict(Counter(j.state.value for j in jobs)),
            "by_reason": dict(Counter(j.reason_code.value for j in jobs if j.reason_code)),
        },
    )


def done_by_deadline(schedule: OemSchedule, now: datetime) -> datetime | None:
    """Today's "done by morning" time (the OEM's business-hours start, in its zone) once it
    has passed; None before it."""
    local = now.astimezone(ZoneInfo(schedule.timezone))
    deadline = local.replace(
        hour=schedule.business_hours_start.hour,
        minute=schedule.business_hours_start.minute,
        second=0,
        microsecond=0,
    )
    return deadline if local >= deadline else None


def late_jobs(store: JobStore, oem: str, deadline: datetime) -> list[Job]:
    """The OEM's jobs created before `deadline` that are still open."""
    return [j for j in store.list_jobs(oem=oem, states=OPEN_STATES) if j.created_at < deadline]


def notify_done_by_morning_missed(store: JobStore, oem: str, schedule: OemSchedule) -> bool:
    """The `queue.done_by_morning_missed` notification, at most once per OEM and local day;
    True when one was written now."""
    deadline = done_by_deadline(schedule, store.clock())
    if deadline is None:
        return False
    late = late_jobs(store, oem, deadline)
    if not late:
        return False
    return store.record_notification(
        "queue.done_by_morning_missed",
        f"{oem}:{deadline:%Y-%m-%d}",
        oem=oem,
        data={
            "date": deadline.date().isoformat(),
            "deadline": deadline.isoformat(),
            "open_jobs": len(late),
            "by_state": dict(Counter(j.state.value for j in late)),
        },
    )


@sensor(
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="Writes a `queue.done_by_morning_missed` notification when an OEM still has "
    "open jobs at its business-hours start (once per OEM and day).",
)
def done_by_morning_sensor(
    context: SensorEvaluationContext, job_store: JobStoreResource
) -> SkipReason:
    store = job_store.get_store()
    registry = oem_registry()
    missed = [
        oem
        for oem in registry.oem_keys()
        if notify_done_by_morning_missed(store, oem, registry.settings(oem).schedule)
    ]
    return SkipReason(f"missed: {', '.join(missed)}" if missed else "nothing newly late")


WEBHOOK_SENSORS = [
    run_now_requests_sensor,
    webhook_dispatch_sensor,
    run_finished_notification_sensor,
    done_by_morning_sensor,
]
