"""Sensors: new CRM cases, retries coming due, the lease reaper, and failed or canceled runs.

Each one is small and idempotent: cursors and run keys make a case or a retry start at most one
run, and the reaper and the failure sensor only ever move jobs through the store's own
compare-and-set paths.
"""

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from dagster import (
    AssetObservation,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    MetadataValue,
    RunFailureSensorContext,
    RunRequest,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from submissions_pipeline.api.sensors import WEBHOOK_SENSORS
from submissions_pipeline.assets.crm_outcomes import needs_crm_sync
from submissions_pipeline.assets.job_metrics import markdown_table
from submissions_pipeline.assets.partitions import OEM_TAG, PARTITION_TAG, TRIGGER_TAG
from submissions_pipeline.assets.submission_runs import submission_runs
from submissions_pipeline.domain import FailureObject, Job, ReasonCode, SubmissionState
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.resources import CrmResource, JobStoreResource
from submissions_pipeline.run_launcher import run_worker_crashed
from submissions_pipeline.schedules import active_run, nightly_job, writeback_job
from submissions_pipeline.settings import load_settings
from submissions_pipeline.store import JobStore, StaleState
from submissions_pipeline.store.operator import CRM_REPORTED_STATES

S = SubmissionState

#: States a retry comes due in: scheduled retries, reconciliations, and jobs the reaper put
#: back in the queue (attempt > 0).
RETRY_STATES = (S.RETRY_SCHEDULED, S.NEEDS_RECONCILIATION, S.QUEUED)


def _every(default_s: int) -> int:
    """A sensor's minimum interval: its own, or the shorter accelerated one of the settings."""
    accelerated = load_settings().sensor_interval_s
    return min(default_s, accelerated) if accelerated else default_s


def _load_cursor(cursor: str | None) -> dict[str, str]:
    try:
        value = json.loads(cursor) if cursor else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _sensor_result(requests: list[RunRequest], cursor: dict[str, str], idle: str) -> SensorResult:
    """The tick's runs and per-OEM cursor; `idle` says why a tick started nothing."""
    return SensorResult(
        run_requests=requests,
        cursor=json.dumps(cursor, sort_keys=True),
        skip_reason=None if requests else SkipReason(idle),
    )


def _newest_batch_runs(
    context: SensorEvaluationContext,
    store: JobStore,
    pending: Callable[[JobStore, str, datetime], list[Job]],
    stamp_of: Callable[[Job], datetime | None],
    key_prefix: str,
    trigger: str,
    idle: str,
) -> SensorResult:
    """One run per OEM whose pending batch is newer than the cursor, keyed by that newest time.

    `pending(store, oem, now)` lists the OEM's jobs waiting for a run and `stamp_of` gives the
    time that makes a batch new. The cursor keeps the newest batch that started a run, so a
    batch starts at most one; an OEM with a run already queued or going is looked at again
    after it ends.
    """
    cursor = _load_cursor(context.cursor)
    now = store.clock()
    requests = []
    for oem in oem_registry().oem_keys():
        stamps = [t for t in map(stamp_of, pending(store, oem, now)) if t is not None]
        if not stamps:
            continue
        stamp = max(stamps).isoformat()
        if cursor.get(oem, "") >= stamp:
            continue  # this batch already started a run
        if active_run(context.instance, oem):
            continue  # the running one pulls them; look again after it ends
        requests.append(
            RunRequest(
                run_key=f"{key_prefix}:{oem}:{stamp}",
                partition_key=oem,
                tags={OEM_TAG: oem, TRIGGER_TAG: trigger},
            )
        )
        cursor[oem] = stamp
    return _sensor_result(requests, cursor, idle)


@sensor(
    job=nightly_job,
    minimum_interval_seconds=_every(120),
    default_status=DefaultSensorStatus.RUNNING
    if load_settings().new_cases_sensor
    else DefaultSensorStatus.STOPPED,
    description="Starts an OEM's run when new cases arrive in the CRM. Off by default: nightly "
    "is the default path; turn it on for near-real-time submissions. The cursor (per OEM) and "
    "run keys make each case trigger at most one run.",
)
def new_crm_cases_sensor(context: SensorEvaluationContext, crm: CrmResource) -> SensorResult:
    cursor = _load_cursor(context.cursor)
    client = crm.get_client()
    requests = []
    for oem in oem_registry().oem_keys():
        page = client.list_new_cases(oem, cursor.get(oem), limit=500)
        if not page.records or active_run(context.instance, oem):
            continue  # nothing new, or a run that will read them: look again next tick
        first, last = page.records[0].sequence, page.records[-1].sequence
        requests.append(
            RunRequest(
                run_key=f"crm-cases:{oem}:{first}-{last}",
                partition_key=oem,
                tags={OEM_TAG: oem, TRIGGER_TAG: "new_crm_cases"},
            )
        )
        if page.next_cursor:
            cursor[oem] = page.next_cursor
    return _sensor_result(requests, cursor, "no new CRM cases")


def due_retries(store: JobStore, oem: str, now: datetime) -> list[Job]:
    """The OEM's jobs whose retry (or reconciliation, or re-queue after reaping) is due."""
    return [
        j
        for j in store.list_jobs(oem=oem, states=RETRY_STATES)
        if j.next_attempt_at is not None
        and j.next_attempt_at <= now
        and (j.state is not S.QUEUED or j.attempt > 0)
    ]


@sensor(
    job=nightly_job,
    minimum_interval_seconds=_every(60),
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts an OEM's run when retries come due (2-10 min jitter after a failure), "
    "so the nightly run never waits for them. At most one run per newly due batch.",
)
def retries_due_sensor(
    context: SensorEvaluationContext, job_store: JobStoreResource
) -> SensorResult:
    return _newest_batch_runs(
        context,
        job_store.get_store(),
        due_retries,
        lambda j: j.next_attempt_at,
        "retries-due",
        "retries_due",
        "no retries newly due",
    )


#: How long an outcome may wait for its CRM write before the sensor writes it: the nightly run
#: writes it minutes after the proof, so only one its run failed to write waits longer.
UNWRITTEN_AFTER = timedelta(minutes=15)


def unwritten_outcomes(store: JobStore, oem: str, now: datetime) -> list[Job]:
    """Proven jobs not yet in the CRM, and failures or reviews not yet posted, that waited."""
    waiting = store.list_jobs(oem=oem, states=[S.EVIDENCE_STORED, *CRM_REPORTED_STATES])
    return [
        j
        for j in waiting
        if (j.state is S.EVIDENCE_STORED or needs_crm_sync(j))
        and now - j.updated_at >= UNWRITTEN_AFTER
    ]


@sensor(
    job=writeback_job,
    minimum_interval_seconds=_every(300),
    default_status=DefaultSensorStatus.RUNNING,
    description="Writes back outcomes a run proved but did not get into the CRM (the CRM was "
    "down, its connection dropped): bundles and CRM updates only, no browser.",
)
def unwritten_outcomes_sensor(
    context: SensorEvaluationContext, job_store: JobStoreResource
) -> SensorResult:
    return _newest_batch_runs(
        context,
        job_store.get_store(),
        unwritten_outcomes,
        lambda j: j.updated_at,
        "writeback",
        "unwritten_outcomes",
        "no unwritten outcomes",
    )


@sensor(
    minimum_interval_seconds=_every(60),
    default_status=DefaultSensorStatus.RUNNING,
    description="The lease reaper: takes back jobs whose worker stopped heartbeating (back to "
    "the queue before the submit click, to reconciliation after it).",
)
def lease_reaper_sensor(
    context: SensorEvaluationContext, job_store: JobStoreResource
) -> SkipReason:
    store = job_store.get_store()
    reaped = store.reap_expired(actor="dagster:lease_reaper")
    for job in reaped:
        notify_worker_lost(store, f"{job.job_id}:{job.attempt}", job.oem, job.run_id, [job])
        context.log.warning(
            f"reaped {job.oem} {job.case_id} (job {job.job_id}) at step {job.last_step}: "
            f"now {job.state}"
        )
    return SkipReason(f"reaped {len(reaped)} expired leases" if reaped else "no expired leases")


def dead_letter_failed_run(
    store: JobStore, run_id: str, reason: str, actor: str = "dagster:run_failure_sensor"
) -> list[Job]:
    """Dead-letter every job a failed run left leased, with a worker-lost failure object."""
    parked = []
    for job in store.list_jobs(run_id=run_id, states=LEASED_STATES):
        failure = FailureObject.of(
            ReasonCode.WORKER_LOST,
            f"run {run_id} failed while the job was leased: {reason}"[:500],
            job_id=job.job_id,
            case_id=job.case_id,
            oem=job.oem,
            attempt=job.attempt,
            last_step=job.last_step,
        )
        try:
            parked.append(store.dead_letter(job.job_id, failure, actor=actor))
        except StaleState:
            continue  # finished or reaped meanwhile: its state is already truthful
    return parked


def record_run_failure_alert(
    instance: DagsterInstance,
    oem: str | None,
    run_id: str,
    reason: str,
    parked: list[Job],
    released: list[Job] | None = None,
    *,
    alert: str = "run_failed",
) -> None:
    """An observation on the OEM's `submission_runs` partition: the alert ops see in the UI
    (`run_failed`, `worker_died`, `run_interrupted`).

    `parked` jobs were dead-lettered; `released` ones (a crashed or stopped run's) given back.
    """
    released = released or []
    metadata: dict[str, Any] = {
        "alert": MetadataValue.text(alert),
        "run_id": MetadataValue.text(run_id),
        "reason": MetadataValue.text(reason[:1000]),
        "dead_lettered": len(parked),
        "given_back": len(released),
        "jobs": markdown_table(
            [
                {
                    "case_id": j.case_id,
                    "job_id": j.job_id,
                    "last_step": j.last_step,
                    "now": j.state.value,
                }
                for j in [*parked, *released]
            ],
            ["case_id", "job_id", "last_step", "now"],
        ),
        "at": MetadataValue.timestamp(datetime.now(UTC)),
    }
    instance.report_runless_asset_event(
        AssetObservation(asset_key=submission_runs.key, partition=oem, metadata=metadata)
    )


def release_run(store: JobStore, run_id: str, why: str) -> list[Job]:
    """Give back every job a crashed or stopped run left leased, as the reaper does when a lease
    expires: to the queue before the submit click, to reconciliation after it (its try still
    counts). `why` names it in each job's history (`dagster:run_<why>:<run id>`)."""
    return store.reap_expired(actor=f"dagster:run_{why}:{run_id}", run_id=run_id)


#: What a stop signal raises in a step (SIGTERM, SIGINT, an operator's terminate).
_INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def step_was_interrupted(event: Any) -> bool:
    """Whether a step failure event is a stop signal's rather than a fault of the step."""
    error = getattr(getattr(event, "step_failure_data", None), "error", None)
    while error is not None:
        if error.cls_name in _INTERRUPTS:
            return True
        error = error.cause
    return False


def run_was_interrupted(failure_event: Any, step_failures: Iterable[Any]) -> bool:
    """Whether a failed run was stopped (its run worker told to stop by a node drain, a deploy
    or Ctrl-C) rather than broken: Dagster records that as an unexpected termination."""
    data = getattr(failure_event, "event_specific_data", None)
    reason = getattr(getattr(data, "failure_reason", None), "value", None)
    return reason == "UNEXPECTED_TERMINATION" or any(step_was_interrupted(e) for e in step_failures)


@run_failure_sensor(
    monitored_jobs=[nightly_job],
    minimum_interval_seconds=_every(30),
    default_status=DefaultSensorStatus.RUNNING,
    description="When a run fails: raise an alert on the OEM's submission_runs. Jobs a crashed "
    "run worker (killed, out of memory) or a stopped one (SIGTERM: a node drain, a deploy) left "
    "leased go back to the queue or to reconciliation, like expired leases; those of a run that "
    "failed otherwise are dead-lettered (a human looks before anything is retried).",
)
def run_failure_alert_sensor(context: RunFailureSensorContext, job_store: JobStoreResource) -> None:
    run = context.dagster_run
    oem = run.tags.get(PARTITION_TAG)
    reason = context.failure_event.message or "run failed"
    store = job_store.get_store()
    crashed = run_worker_crashed(context.instance, run.run_id)
    if crashed or run_was_interrupted(context.failure_event, context.get_step_failure_events()):
        why = "crashed" if crashed else "interrupted"
        released = release_run(store, run.run_id, why)
        context.log.error(
            f"run {run.run_id} ({oem or 'no OEM'}) {why}: {reason}; gave back "
            f"{len(released)} leased jobs"
        )
        alert = "worker_died" if crashed else "run_interrupted"
        record_run_failure_alert(
            context.instance, oem, run.run_id, reason, [], released, alert=alert
        )
        return
    parked = dead_letter_failed_run(store, run.run_id, reason)
    context.log.error(
        f"run {run.run_id} ({oem or 'no OEM'}) failed: {reason}; "
        f"dead-lettered {len(parked)} leased jobs"
    )
    record_run_failure_alert(context.instance, oem, run.run_id, reason, parked)
    if parked:
        notify_worker_lost(job_store.get_store(), run.run_id, oem, run.run_id, parked)


@run_status_sensor(
    run_status=DagsterRunStatus.CANCELED,
    monitored_jobs=[nightly_job],
    minimum_interval_seconds=_every(30),
    default_status=DefaultSensorStatus.RUNNING,
    description="When an operator terminates a run: give back at once every job it still held "
    "leased (to the queue before the submit click, to reconciliation after it), instead of "
    "leaving them until their leases expire.",
)
def canceled_run_sensor(context: RunStatusSensorContext, job_store: JobStoreResource) -> None:
    run = context.dagster_run
    released = release_run(job_store.get_store(), run.run_id, "canceled")
    context.log.info(
        f"run {run.run_id} ({run.tags.get(PARTITION_TAG) or 'no OEM'}) was canceled; gave back "
        f"{len(released)} leased jobs"
        + "".join(f"\n  {j.case_id} (job {j.job_id}): now {j.state}" for j in released)
    )


def notify_worker_lost(
    store: JobStore, key: str, oem: str | None, run_id: str | None, jobs: list[Job]
) -> None:
    """The `run.worker_lost` notification, once per lost run (or reaped attempt)."""
    store.record_notification(
        "run.worker_lost",
        key,
        oem=oem,
        data={
            "run_id": run_id,
            "jobs": [
                {"job_id": j.job_id, "case_id": j.case_id, "last_step": j.last_step} for j in jobs
            ],
        },
    )


ALL_SENSORS = [
    new_crm_cases_sensor,
    retries_due_sensor,
    unwritten_outcomes_sensor,
    lease_reaper_sensor,
    run_failure_alert_sensor,
    canceled_run_sensor,
    *WEBHOOK_SENSORS,
]
