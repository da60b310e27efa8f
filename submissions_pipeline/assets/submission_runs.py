"""`submission_runs[oem]`: workers on the browser pool pull due jobs and submit them with proof.

A graph-backed asset. `pre_run_canary` walks one waiting case up to the submit click first (a
broken adapter stops the run before any claim); `plan_workers` looks at the due backlog and
decides how many workers it needs (capped by run config); each `run_worker_batch` op is one
worker — one Chromium, up to the context cap — that claims jobs from the global queue itself
until the queue is drained or its budget is spent (claiming up front would let leases expire
while an op waits for a pool slot).
`collect_outcomes` turns the workers' reports into the asset's DataFrame and metadata.
"""

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AssetIn,
    Config,
    DynamicOut,
    DynamicOutput,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    graph_asset,
    op,
)
from pydantic import BaseModel, Field

from submissions_pipeline.assets.fleet_observer import fleet_attempts, wait_until_settled
from submissions_pipeline.assets.job_metrics import (
    ERROR_BUDGET,
    budget_failures,
    error_class_counts,
    evidence_links,
    fail_rate,
    markdown_table,
    per_oem_series,
    reason_summary,
    state_counts,
    timing_metadata,
)
from submissions_pipeline.assets.partitions import oem_partitions, worker_id
from submissions_pipeline.assets.run_canary import BROWSER_POOL, pre_run_canary
from submissions_pipeline.domain.fleet import (
    Backlog,
    FleetPolicy,
    desired_workers,
    fleet_concurrency,
    seconds_until_business_hours,
)
from submissions_pipeline.domain.oem import OemSettings
from submissions_pipeline.golive_watch import GoLiveWatch, run_stats
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.resources import (
    ArtifactStoreResource,
    BrowserResource,
    CredentialsResource,
    JobStoreResource,
    PortalsResource,
    runner_deps,
)
from submissions_pipeline.run_launcher import dies_with_its_run_worker
from submissions_pipeline.runner import BatchReport, run_batch
from submissions_pipeline.store import JobStore

OUTCOME_COLUMNS = [
    "job_id",
    "case_id",
    "oem",
    "attempt",
    "state",
    "reference",
    "reconciled",
    "reason_code",
    "error_class",
    "last_step",
    "message",
    "seconds",
    "worker_id",
    "evidence_url",
]

#: Run tags the runs list shows (and filters by): how many attempts, how many failed.
ATTEMPTS_TAG = "submissions/attempts"
FAILED_ATTEMPTS_TAG = "submissions/failed_attempts"
ERROR_BUDGET_TAG = "submissions/error_budget"


class PriorityOrder(Enum):
    """Which due jobs a worker claims first."""

    PRIORITY = "priority"  # highest priority, then oldest due
    REDACTION_SENSITIVE_FIRST = "redaction_sensitive_first"  # then priority, then oldest due


class SubmissionRunConfig(Config):
    """Batch parameters of one run (launchpad: ops.submission_runs.ops.plan_workers.config)."""

    max_jobs: int = Field(500, ge=0, description="Attempts this run may start, all workers.")
    workers: int = Field(
        2,
        ge=1,
        le=16,
        description="Most workers (one Chromium each) this run starts; the planner starts "
        "fewer when the backlog is small. The browser pool caps them across runs.",
    )
    jobs_per_worker: int = Field(
        25,
        ge=1,
        description="Due jobs that justify one more worker (each worker costs a process and a "
        "browser launch, so batches are few and large); the autoscaling policy adds workers, "
        "up to `workers`, when the backlog would not finish before business hours.",
    )
    context_cap: int = Field(
        0,
        ge=0,
        le=16,
        description="Concurrent contexts per worker; 0 keeps the deployment's setting "
        "(1-2 per vCPU is stable).",
    )
    priority_order: PriorityOrder = Field(
        PriorityOrder.PRIORITY,
        description="priority: highest priority then oldest due first; "
        "redaction_sensitive_first: redaction-sensitive cases ahead of everything else.",
    )
    dry_run: bool = Field(False, description="Claim nothing: report what is due.")
    time_budget_s: float = Field(
        3600.0, gt=0, description="Workers stop claiming this long after planning."
    )


class WorkerAssignment(BaseModel):
    """What one worker op is told: its share of the run's budget."""

    oem: str
    index: int
    max_jobs: int
    context_cap: int
    prefer_redaction_sensitive: bool
    dry_run: bool
    deadline: datetime


class RunPlan(BaseModel):
    """The planner's decision, for the asset's metadata."""

    oem: str
    due_at_start: int
    workers: int
    context_cap: int
    max_jobs: int
    dry_run: bool
    #: Who drives the browsers: "run" (this run's worker ops) or "fleet" (outside workers).
    driver: str = "run"
    planned_at: datetime | None = None
    deadline: datetime | None = None


def plan_worker_count(
    due: int,
    cfg: SubmissionRunConfig,
    *,
    in_flight: int = 0,
    p95_s: float | None = None,
    seconds_left: float | None = None,
    context_cap: int = 1,
    oem: OemSettings | None = None,
) -> int:
    """Workers this run starts: the fleet's autoscaling policy (`domain/fleet.py`) on the due
    backlog, bounded by the run config (`workers`, `max_jobs`, `time_budget_s`).

    The time left is the sooner of the OEM's business-hours start and the run's time budget.
    One worker per `jobs_per_worker` due jobs is the batch size a run starts with (each worker
    op is a process and a browser launch, so batches are few and large); the policy adds
    workers when that would not finish in time. No worker when nothing is due; one in a dry
    run, which reports the backlog without claiming.
    """
    if cfg.dry_run:
        return 1
    work = min(due, cfg.max_jobs)
    if work <= 0:
        return 0
    fleet = (oem.fleet if oem else FleetPolicy()).model_copy(
        update={"min_workers": 0, "max_workers": cfg.workers, "contexts_per_worker": context_cap}
    )
    left = cfg.time_budget_s if seconds_left is None else min(seconds_left, cfg.time_budget_s)
    backlog = Backlog(
        due=work,
        in_flight=in_flight,
        p95_s=p95_s,
        seconds_left=left,
        oem_cap=oem.concurrency.max_sessions if oem else None,
    )
    by_batch = min(cfg.workers, math.ceil(work / cfg.jobs_per_worker))
    return max(1, by_batch, desired_workers(backlog, fleet))


def split_budget(total: int, parts: int) -> list[int]:
    """`total` jobs shared as evenly as possible between `parts` workers."""
    if parts <= 0:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


@op(
    ins={"canary_passed": In(Nothing)},
    out={"workers": DynamicOut(WorkerAssignment), "plan": Out(RunPlan)},
    description="Decide how many browser workers the OEM's due backlog needs.",
)
def plan_workers(
    context: OpExecutionContext,
    config: SubmissionRunConfig,
    job_store: JobStoreResource,
    browser: BrowserResource,
) -> Iterator[DynamicOutput[WorkerAssignment] | Output[RunPlan]]:
    oem = context.partition_key
    stats = job_store.get_store().stats(oem=oem)
    due = stats.due_now
    cap = config.context_cap or browser.context_cap
    settings = oem_registry().settings(oem)
    n = plan_worker_count(
        due,
        config,
        in_flight=stats.running,
        p95_s=stats.p95_job_s,
        seconds_left=seconds_until_business_hours(
            datetime.now(UTC),
            settings.schedule.business_hours_start,
            settings.schedule.timezone,
        ),
        context_cap=cap,
        oem=settings,
    )
    planned_at = datetime.now(UTC)
    deadline = planned_at + timedelta(seconds=config.time_budget_s)
    record = context.instance.get_run_record_by_id(context.run.run_id)
    if record is not None and record.start_time:
        # Fleet workers claim as soon as crm_cases enqueues: the run's attempts start with it.
        planned_at = min(planned_at, datetime.fromtimestamp(record.start_time, UTC))
    fleet = browser.driver == "fleet" and not config.dry_run
    shares = [] if fleet else split_budget(config.max_jobs, n)
    context.log.info(
        f"{oem}: {due} jobs due; the fleet's workers drive the browsers (the policy asks for "
        f"{n}); this run observes until the due jobs settle"
        if fleet
        else f"{oem}: {due} jobs due; starting {n} worker(s) x {cap} contexts "
        f"(max {config.max_jobs} jobs, {config.priority_order.value} first"
        f"{', dry run' if config.dry_run else ''})"
    )
    for i, share in enumerate(shares):
        yield DynamicOutput(
            WorkerAssignment(
                oem=oem,
                index=i,
                max_jobs=share,
                context_cap=cap,
                prefer_redaction_sensitive=config.priority_order
                is PriorityOrder.REDACTION_SENSITIVE_FIRST,
                dry_run=config.dry_run,
                deadline=deadline,
            ),
            output_name="workers",
            mapping_key=f"w{i}",
        )
    yield Output(
        RunPlan(
            oem=oem,
            due_at_start=due,
            workers=n,
            context_cap=cap,
            max_jobs=config.max_jobs,
            dry_run=config.dry_run,
            driver="fleet" if fleet else "run",
            planned_at=planned_at,
            deadline=deadline,
        ),
        output_name="plan",
    )


@op(
    pool=BROWSER_POOL,
    tags={"kind": "playwright"},
    description="One worker: one Chromium pulling due jobs of the OEM under the context cap.",
)
def run_worker_batch(
    context: OpExecutionContext,
    assignment: WorkerAssignment,
    job_store: JobStoreResource,
    artifacts: ArtifactStoreResource,
    credentials: CredentialsResource,
    portals: PortalsResource,
    browser: BrowserResource,
) -> BatchReport:
    wid = worker_id(context.run.run_id, assignment.oem, assignment.index)
    now = datetime.now(UTC)
    remaining = (assignment.deadline - now).total_seconds()
    if remaining <= 0:
        context.log.warning(f"{wid}: time budget spent while waiting for a browser slot")
        return BatchReport(
            worker_id=wid,
            oem=assignment.oem,
            started_at=now,
            finished_at=now,
            stop_reason="time budget spent before start",
        )
    deps = runner_deps(
        job_store=job_store,
        artifacts=artifacts,
        credentials=credentials,
        portals=portals,
        browser=browser,
        adapters={assignment.oem: oem_registry().load_adapter(assignment.oem)},
    )
    cfg = browser.batch_config(
        oem=assignment.oem,
        run_id=context.run.run_id,
        worker_id=wid,
        max_jobs=assignment.max_jobs,
        time_budget_s=remaining,
        prefer_redaction_sensitive=assignment.prefer_redaction_sensitive,
        dry_run=assignment.dry_run,
        context_cap=assignment.context_cap,
    )
    with dies_with_its_run_worker():
        report = run_batch(cfg, deps)
    failed = [o for o in report.outcomes if o.reason_code is not None]
    context.log.info(
        f"{wid}: {len(report.outcomes)} attempts, {len(failed)} failed, "
        f"{report.seconds:.1f}s; stopped: {report.stop_reason}"
        + (f"; halted OEMs: {report.halted_oems}" if report.halted_oems else "")
    )
    evidence = artifacts.get_store()
    for o in failed:
        context.log.warning(
            f"{o.case_id} (job {o.job_id}) attempt {o.attempt}: {o.reason_code} -> {o.state} "
            f"at step {o.last_step or 'unknown'}: {o.message or 'no message'}; "
            f"evidence: {evidence.job_link(o.job_id, attempt=o.attempt)}"
        )
    return report


def outcomes_frame(
    reports: list[BatchReport], urls: dict[str, str | None] | None = None
) -> pd.DataFrame:
    """One row per attempt the workers made, in the order they finished."""
    urls = urls or {}
    rows = [
        {
            "job_id": o.job_id,
            "case_id": o.case_id,
            "oem": o.oem,
            "attempt": o.attempt,
            "state": o.state.value,
            "reference": o.reference,
            "reconciled": o.reconciled,
            "reason_code": o.reason_code.value if o.reason_code else None,
            "error_class": o.error_class.value if o.error_class else None,
            "last_step": o.last_step,
            "message": o.message or None,
            "seconds": o.seconds,
            "worker_id": r.worker_id,
            "evidence_url": urls.get(o.job_id),
        }
        for r in reports
        for o in r.outcomes
    ]
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)


@op(description="Gather the workers' outcomes into the asset's table and metadata.")
def collect_outcomes(
    context: OpExecutionContext,
    plan: RunPlan,
    reports: list[BatchReport],
    job_store: JobStoreResource,
    artifacts: ArtifactStoreResource,
    browser: BrowserResource,
) -> Output[pd.DataFrame]:
    store, evidence = job_store.get_store(), artifacts.get_store()
    if plan.driver == "fleet" and plan.planned_at and plan.deadline:
        stop = wait_until_settled(store, plan.oem, plan.deadline, lambda: datetime.now(UTC))
        reports = fleet_attempts(store, plan.oem, plan.planned_at, stop)
        context.log.info(f"{plan.oem}: {stop}; {len(reports)} fleet worker(s) made attempts")
    golive = GoLiveWatch(store, legacy_folder=Path(browser.home) / "golive").observe(
        plan.oem, run_stats(reports), oem_registry().settings(plan.oem).golive
    )
    for warning in golive.warnings:
        context.log.warning(f"go-live drift: {warning}")
    urls: dict[str, str | None] = {}
    for r in reports:
        for o in r.outcomes:
            # The console's job page: it outlives file paths and presigned links.
            urls[o.job_id] = evidence.job_link(o.job_id)
    df = outcomes_frame(reports, urls)
    concurrency = (len(reports) if plan.driver == "fleet" else plan.workers) * plan.context_cap
    after = store.stats(oem=plan.oem)
    depth = after.depth.get(plan.oem, {})
    failed = budget_failures(list(df["state"]), list(df["error_class"]))
    over_budget = bool(len(df)) and failed / len(df) >= ERROR_BUDGET
    _tag_run(context, attempts=len(df), failed=failed, over_budget=over_budget)
    metadata = {
        "attempts": len(df),
        "failed_attempts": failed,
        **state_counts(df["state"]),
        "fail_rate": fail_rate(list(df["state"])),
        **timing_metadata(list(df["seconds"]), concurrency),
        "concurrency": concurrency,
        "workers": plan.workers,
        "browser_driver": plan.driver,
        "due_at_start": plan.due_at_start,
        "due_after": after.due_now,
        "retry_scheduled_after": depth.get("retry_scheduled", 0),
        "browser_launches": sum(r.browser_launches for r in reports),
        "browser_crashes": sum(r.browser_crashes for r in reports),
        "dagster/row_count": len(df),
        "stop_reasons": MetadataValue.text(
            "; ".join(sorted({r.stop_reason for r in reports})) or "no workers: nothing due"
        ),
        "halted_oems": MetadataValue.text(
            ", ".join(sorted({o for r in reports for o in r.halted_oems}))
        ),
        **error_class_counts(df["error_class"]),
        "reason_codes": reason_summary(df["reason_code"]),
        "jobs": markdown_table(
            df.to_dict("records"),
            ["case_id", "attempt", "state", "reference", "reason_code", "seconds", "evidence_url"],
            link_column="evidence_url",
        ),
        "failures": failures_table(df),
        "golive": MetadataValue.text(
            "; ".join([golive.status, *golive.warnings])
            if golive.baseline or golive.status == "idle"
            else f"{golive.status}: {golive.clean_runs} clean run(s) towards the baseline"
        ),
        **evidence_links(zip(df["case_id"], df["evidence_url"], strict=True)),
    }
    metadata.update(at_risk_metadata(store, plan.oem, concurrency, after.p95_job_s))
    metadata.update(per_oem_series(plan.oem, metadata))
    return Output(df, metadata=metadata)


#: At-risk job ids the metadata lists (the count covers every one).
AT_RISK_LISTED = 20


def at_risk_metadata(
    store: JobStore, oem: str, concurrency: int, p95_s: float | None
) -> dict[str, Any]:
    """The OEM's due jobs still expected to finish after their due date, at the concurrency
    this run had: what a person should raise in priority or give more workers before morning."""
    settings = oem_registry().settings(oem)
    risky = store.at_risk(
        oem,
        p95_s=p95_s or settings.fleet.default_p95_s,
        concurrency=fleet_concurrency(concurrency, 1, settings.concurrency.max_sessions),
    )
    return {
        "jobs_at_risk": len(risky),
        "at_risk_job_ids": MetadataValue.json(risky[:AT_RISK_LISTED]),
    }


def failures_table(df: pd.DataFrame) -> MetadataValue:
    """Each failed attempt: reason, step, message and the console link, the night's story."""
    rows = df[df["reason_code"].notna()].to_dict("records")
    return markdown_table(
        rows,
        ["case_id", "attempt", "reason_code", "last_step", "message", "state", "evidence_url"],
        link_column="evidence_url",
    )


def _tag_run(context: OpExecutionContext, *, attempts: int, failed: int, over_budget: bool) -> None:
    """Put the counts on the run itself, so the runs list tells a bad night from a good one."""
    context.instance.add_run_tags(
        context.run.run_id,
        {
            ATTEMPTS_TAG: str(attempts),
            FAILED_ATTEMPTS_TAG: str(failed),
            ERROR_BUDGET_TAG: "exceeded" if over_budget else "ok",
        },
    )
    if over_budget:
        context.log.error(
            f"{failed} of {attempts} attempts failed: over the {ERROR_BUDGET:.0%} error budget"
        )


@graph_asset(
    partitions_def=oem_partitions,
    group_name="submissions",
    kinds={"playwright", "pandas"},
    ins={"crm_cases": AssetIn(dagster_type=Nothing)},
    description="Browser workers submit the OEM's due jobs through its portal with evidence; "
    "one row per attempt.",
)
def submission_runs(crm_cases):
    workers, plan = plan_workers(pre_run_canary(crm_cases))
    reports = workers.map(run_worker_batch).collect()
    return collect_outcomes(plan, reports)
