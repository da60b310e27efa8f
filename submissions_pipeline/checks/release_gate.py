"""The release gate: five consecutive clean end-to-end runs per OEM before it scales.

The run history lives in Dagster's own records: every `crm_updates` materialization carries its
run's verdict (clean, failed or idle — see `assets.crm_updates.release_verdict`, computed from the
job store), and a run of the OEM's partition that failed or was cancelled counts as failed even
when it never reached `crm_updates` (e.g. a blocking evidence check stopped it). Idle runs
(nothing claimed) neither advance nor reset the count; any failure resets it to zero.
"""

from dataclasses import dataclass

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    asset_check,
)

from submissions_pipeline.assets.crm_updates import CLEAN, FAILED, IDLE, VERDICT_KEY, crm_updates
from submissions_pipeline.assets.job_metrics import markdown_table
from submissions_pipeline.assets.partitions import PARTITION_TAG, oem_partitions

#: Consecutive clean runs an OEM needs before it counts as verified: enough to surface the
#: edge cases of a new portal before its cadence is scaled up.
REQUIRED_CLEAN_RUNS = 5
#: How far back the history is read; more than enough to find the last reset.
HISTORY_LIMIT = 100


@dataclass(frozen=True)
class RunVerdict:
    """One run's place in the gate's history."""

    at: float
    run_id: str
    verdict: str


def gate_history(instance: DagsterInstance, oem: str) -> list[RunVerdict]:
    """The OEM's runs, newest first: verdicts from crm_updates, failures from run records."""
    by_run: dict[str, RunVerdict] = {}
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(crm_updates.key.path), asset_partitions=[oem]),
        limit=HISTORY_LIMIT,
    ).records
    for record in records:
        materialization = record.asset_materialization
        value = materialization.metadata.get(VERDICT_KEY) if materialization else None
        verdict = getattr(value, "value", None)
        if verdict in (CLEAN, FAILED, IDLE):
            key = record.run_id or f"event-{record.storage_id}"
            by_run[key] = RunVerdict(record.timestamp, key, verdict)
    failed_runs = instance.get_run_records(
        RunsFilter(
            tags={PARTITION_TAG: oem},
            statuses=[DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED],
        ),
        limit=HISTORY_LIMIT,
    )
    for run in failed_runs:
        at = run.end_time or run.update_timestamp.timestamp()
        by_run[run.dagster_run.run_id] = RunVerdict(at, run.dagster_run.run_id, FAILED)
    return sorted(by_run.values(), key=lambda v: v.at, reverse=True)


def consecutive_clean(history: list[RunVerdict]) -> tuple[int, RunVerdict | None]:
    """Clean runs since the newest failure (idle runs skipped), and that failure."""
    count = 0
    for v in history:
        if v.verdict == IDLE:
            continue
        if v.verdict == FAILED:
            return count, v
        count += 1
    return count, None


@asset_check(
    asset=crm_updates,
    partitions_def=oem_partitions,
    description=f"{REQUIRED_CLEAN_RUNS} consecutive clean end-to-end runs of this OEM (fill -> "
    "submit -> evidence -> reference -> CRM update); any failed run resets the count.",
)
def release_gate(context: AssetCheckExecutionContext) -> AssetCheckResult:
    oem = context.partition_key
    history = gate_history(context.instance, oem)
    count, reset = consecutive_clean(history)
    passed = count >= REQUIRED_CLEAN_RUNS
    # Not yet proven (a warning that says how far along) is not failed (the newest failure in
    # the history reset the count: an error), so a first clean night never reads as broken.
    if passed:
        status, severity = "passed", AssetCheckSeverity.WARN
    elif reset is None:
        status, severity = "not yet proven", AssetCheckSeverity.WARN
    else:
        status, severity = "failed", AssetCheckSeverity.ERROR
    return AssetCheckResult(
        passed=passed,
        severity=severity,
        description=f"{status}: {count} of {REQUIRED_CLEAN_RUNS} consecutive clean runs"
        + (f"; last reset by run {reset.run_id}" if reset else ""),
        metadata={
            "status": status,
            "consecutive_clean_runs": count,
            "required_clean_runs": REQUIRED_CLEAN_RUNS,
            "runs_recorded": len(history),
            "last_reset_run": reset.run_id if reset else "",
            "history": markdown_table(
                [{"run_id": v.run_id, "verdict": v.verdict} for v in history[:20]],
                ["run_id", "verdict"],
            ),
        },
    )
