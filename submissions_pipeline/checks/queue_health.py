"""Reliability checks on the job store, per OEM: soak, error budget, queue age, orphaned jobs.

Thresholds are the release bar's numbers:

- **soak**: over the OEM's last 1,000 finished jobs, fail rate < 3 % and p95 job time < 5 min.
  With fewer than 1,000 finished jobs the soak is *not proven*: the check fails with WARN
  severity (visible, never green, not blocking) until the sample is large enough.
  A "failure" is a job that ended failed or dead-lettered for a reason other than invalid data
  (a case a human must fix is the pipeline working as designed).
- **error budget**: this run's failed attempts (retry-scheduled ones included) < 2 % of the
  attempts it made, and over the same window plus every job waiting for a retry, failed
  attempts (including ones a retry later fixed) < 2 % of attempts. Over budget is an ERROR.
- **queue age**: the oldest due job has waited < 2 x the OEM's schedule interval.
- **zero orphaned jobs**: no job is leased with an expired lease that the reaper has not taken
  back, and none is leased by a Dagster run that is no longer running.
"""

import math
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetRecordsFilter,
    DagsterInstance,
    DagsterRunStatus,
    asset_check,
)

from submissions_pipeline.assets.job_metrics import ERROR_BUDGET, markdown_table
from submissions_pipeline.assets.partitions import oem_partitions, schedule_interval_s
from submissions_pipeline.assets.submission_runs import submission_runs
from submissions_pipeline.domain import ErrorClass, Job, SubmissionState
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.domain.stats import percentile
from submissions_pipeline.resources import JobStoreResource

S = SubmissionState

SOAK_WINDOW = 1000
SOAK_MAX_FAIL_RATE = 0.03
SOAK_MAX_P95_S = 300.0
QUEUE_AGE_FACTOR = 2.0

FINISHED_STATES = (S.CRM_UPDATED, S.FAILED_TERMINAL, S.DEAD_LETTERED)
#: Runs whose leases are live.
LIVE_RUN_STATUSES = frozenset(
    {
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.CANCELING,
    }
)


def notify_once(
    job_store: JobStoreResource, event_type: str, oem: str, data: dict[str, Any]
) -> None:
    """A failed check's webhook notification: once per OEM and day (the store's date), however
    often the check is evaluated again."""
    store = job_store.get_store()
    now = store.clock()
    data = {**data, "date": now.date().isoformat()}
    store.record_notification(event_type, f"{oem}:{now:%Y-%m-%d}", oem=oem, data=data, now=now)


def _is_business_failure(job: Job) -> bool:
    return job.reason_code is not None and job.reason_code.error_class is ErrorClass.INVALID_DATA


def recent_finished(jobs: list[Job], window: int = SOAK_WINDOW) -> list[Job]:
    """The newest `window` finished jobs."""
    done = [j for j in jobs if j.state in FINISHED_STATES]
    epoch = datetime.min.replace(tzinfo=UTC)
    done.sort(key=lambda j: j.finished_at or j.updated_at or epoch, reverse=True)
    return done[:window]


def soak_numbers(jobs: list[Job]) -> dict[str, float | int]:
    """Fail rate and p95 job time of finished jobs (invalid data is not a failure)."""
    failed = [
        j
        for j in jobs
        if j.state in (S.FAILED_TERMINAL, S.DEAD_LETTERED) and not _is_business_failure(j)
    ]
    durations = [j.duration_s for j in jobs if j.duration_s is not None]
    p95 = percentile(durations, 95)
    return {
        "jobs": len(jobs),
        "failed": len(failed),
        "fail_rate": len(failed) / len(jobs) if jobs else math.nan,
        "p95_job_s": p95 if p95 is not None else math.nan,
    }


def attempt_errors(jobs: list[Job]) -> tuple[int, int]:
    """(failed attempts, attempts) of finished and retry-scheduled jobs, invalid data left out.

    A retry-scheduled job's attempts all failed so far; a proven job's all but the last.
    """
    failed = attempts = 0
    for j in jobs:
        if _is_business_failure(j):
            continue
        attempts += j.attempt
        failed += j.attempt - 1 if j.state is S.CRM_UPDATED else j.attempt
    return failed, attempts


def run_attempts(context: AssetCheckExecutionContext) -> tuple[int, int] | None:
    """(failed attempts, attempts) that this run's `submission_runs` made, from its metadata;
    None when the asset was not materialized for this partition in this run."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=submission_runs.key, asset_partitions=[context.partition_key]),
        limit=1,
    ).records
    if not records or records[0].run_id != context.run.run_id:
        return None
    meta = records[0].asset_materialization.metadata
    if "failed_attempts" not in meta:
        return None
    return int(meta["failed_attempts"].value), int(meta["attempts"].value)


def find_orphans(
    jobs: list[Job], instance: DagsterInstance, current_run_id: str, now: datetime
) -> list[dict[str, str]]:
    """Leased jobs nobody will finish: lease expired, or held by a run that is not running.

    Jobs of the current run count too: its workers have returned by the time checks run.
    Jobs leased by workers outside Dagster (no run id) are judged by their lease alone.
    """
    orphans = []
    for j in jobs:
        if j.state not in LEASED_STATES:
            continue
        why = None
        if j.lease_expires_at is not None and j.lease_expires_at < now:
            why = "lease expired, not reaped"
        elif j.run_id == current_run_id:
            why = "still leased after this run's workers returned"
        elif j.run_id:
            run = instance.get_run_by_id(j.run_id)
            if run is None or run.status not in LIVE_RUN_STATUSES:
                why = f"leased by run {j.run_id} which is {run.status.value if run else 'gone'}"
        if why:
            orphans.append({"case_id": j.case_id, "job_id": j.job_id, "state": j.state, "why": why})
    return orphans


@asset_check(
    asset=submission_runs,
    partitions_def=oem_partitions,
    description=f"Soak: over the last {SOAK_WINDOW:,} finished jobs, fail rate < "
    f"{SOAK_MAX_FAIL_RATE:.0%} and p95 job time < {SOAK_MAX_P95_S / 60:.0f} min. Fewer jobs: "
    "WARN (not yet proven), never a silent pass.",
)
def soak(context: AssetCheckExecutionContext, job_store: JobStoreResource) -> AssetCheckResult:
    oem = context.partition_key
    window = recent_finished(job_store.get_store().list_jobs(oem=oem, states=FINISHED_STATES))
    n = soak_numbers(window)
    meta = {**n, "window": SOAK_WINDOW, "max_fail_rate": SOAK_MAX_FAIL_RATE}
    if n["jobs"] < SOAK_WINDOW:
        # Too few jobs to prove anything, but enough failures already to fail: an error, never
        # the same warning a clean first night gets.
        failing = n["failed"] > 0 and n["fail_rate"] >= SOAK_MAX_FAIL_RATE
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.ERROR if failing else AssetCheckSeverity.WARN,
            description=(
                f"failed: fail rate {n['fail_rate']:.1%} over {n['jobs']} finished jobs"
                if failing
                else f"not yet proven: {n['jobs']} of {SOAK_WINDOW:,} finished jobs"
            ),
            metadata={**meta, "status": "failed" if failing else "not yet proven"},
        )
    ok_rate = n["fail_rate"] < SOAK_MAX_FAIL_RATE
    ok_p95 = not math.isnan(n["p95_job_s"]) and n["p95_job_s"] < SOAK_MAX_P95_S
    problems = []
    if not ok_rate:
        problems.append(f"fail rate {n['fail_rate']:.1%} >= {SOAK_MAX_FAIL_RATE:.0%}")
    if not ok_p95:
        problems.append(f"p95 {n['p95_job_s']:.0f}s >= {SOAK_MAX_P95_S:.0f}s")
    return AssetCheckResult(
        passed=ok_rate and ok_p95,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems) or "soak passed",
        metadata=meta,
    )


@asset_check(
    asset=submission_runs,
    partitions_def=oem_partitions,
    description=f"Error budget: failed attempts (retry-scheduled or retried) < {ERROR_BUDGET:.0%} "
    f"of this run's attempts, and of the attempts of the last {SOAK_WINDOW:,} finished jobs and "
    "of every job waiting for a retry.",
)
def error_budget(
    context: AssetCheckExecutionContext, job_store: JobStoreResource
) -> AssetCheckResult:
    oem = context.partition_key
    store = job_store.get_store()
    window = recent_finished(store.list_jobs(oem=oem, states=FINISHED_STATES))
    waiting = store.list_jobs(oem=oem, states=[S.RETRY_SCHEDULED])
    failed, attempts = attempt_errors(window + waiting)
    rate = failed / attempts if attempts else 0.0
    run_failed, run_total = run_attempts(context) or (0, 0)
    run_rate = run_failed / run_total if run_total else 0.0
    if rate >= ERROR_BUDGET or run_rate >= ERROR_BUDGET:
        notify_once(
            job_store,
            "error_budget.breached",
            oem,
            {"error_rate": max(rate, run_rate), "attempts": attempts, "run_attempts": run_total},
        )
    return AssetCheckResult(
        passed=rate < ERROR_BUDGET and run_rate < ERROR_BUDGET,
        severity=AssetCheckSeverity.ERROR,
        description=f"this run: {run_failed} of {run_total} attempts failed ({run_rate:.1%}); "
        f"recent jobs: {failed} of {attempts} ({rate:.1%}); budget {ERROR_BUDGET:.0%}",
        metadata={
            "run_failed_attempts": run_failed,
            "run_attempts": run_total,
            "run_error_rate": run_rate,
            "failed_attempts": failed,
            "attempts": attempts,
            "error_rate": rate,
            "budget": ERROR_BUDGET,
            "jobs": len(window),
            "retry_scheduled": len(waiting),
        },
    )


@asset_check(
    asset=submission_runs,
    partitions_def=oem_partitions,
    description=f"Queue age: the oldest due job has waited less than {QUEUE_AGE_FACTOR:g} x the "
    "OEM's schedule interval (queue age is the first sign of too little concurrency).",
)
def queue_age(context: AssetCheckExecutionContext, job_store: JobStoreResource) -> AssetCheckResult:
    oem = context.partition_key
    stats = job_store.get_store().stats(oem=oem)
    limit = QUEUE_AGE_FACTOR * schedule_interval_s(oem)
    age = stats.oldest_due_age_s or 0.0
    if age >= limit:
        notify_once(
            job_store,
            "queue.age_exceeded",
            oem,
            {"oldest_due_age_s": float(age), "limit_s": float(limit), "due_now": stats.due_now},
        )
    return AssetCheckResult(
        passed=age < limit,
        severity=AssetCheckSeverity.ERROR,
        description=f"oldest due job waited {age / 3600:.1f} h (limit {limit / 3600:.0f} h)",
        metadata={
            "oldest_due_age_s": float(age),
            "limit_s": float(limit),
            "due_now": stats.due_now,
        },
    )


@asset_check(
    asset=submission_runs,
    partitions_def=oem_partitions,
    description="Zero orphaned jobs: no expired lease left unreaped, no job leased by a run "
    "that is no longer running.",
)
def zero_orphaned_jobs(
    context: AssetCheckExecutionContext, job_store: JobStoreResource
) -> AssetCheckResult:
    oem = context.partition_key
    store = job_store.get_store()
    leased = store.list_jobs(oem=oem, states=LEASED_STATES)
    orphans = find_orphans(leased, context.instance, context.run.run_id, store.clock())
    return AssetCheckResult(
        passed=not orphans,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(orphans)} orphaned jobs" if orphans else "no orphaned jobs",
        metadata={
            "orphans": len(orphans),
            "leased": len(leased),
            "orphaned_jobs": markdown_table(orphans, ["case_id", "job_id", "state", "why"]),
        },
    )
