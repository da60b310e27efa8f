"""`crm_updates[oem]`: outcomes written back to the CRM, idempotently, and the run's verdict.

Proven jobs (`evidence_stored` with a complete bundle) get status, reference, proof link and
`submitted_by_automation`, then move to `crm_updated`; terminal failures (`failed_terminal`,
`dead_lettered`) are posted once with their failure object. Writing the same update twice
changes nothing in the CRM, and a job moves to `crm_updated` once, so re-runs repeat nothing.

The asset also records the run's release verdict (`release_verdict` metadata), read back by the
release-gate check: a run is *clean* when it attempted at least one job and every job it
claimed ended `crm_updated` with a reference and no failure recorded by any of its workers.
"""

import contextlib
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset
from pydantic import ValidationError

from submissions_pipeline.artifacts import ArtifactNotFound, ArtifactStore
from submissions_pipeline.assets.crm_outcomes import bundle_key, needs_crm_sync, outcome_update
from submissions_pipeline.assets.evidence_bundles import EvidenceBundle, evidence_bundles
from submissions_pipeline.assets.job_metrics import evidence_links, markdown_table
from submissions_pipeline.assets.partitions import oem_partitions, run_actor
from submissions_pipeline.crm import CrmClient, CrmConflict, CrmStatus
from submissions_pipeline.domain import Job, Step, SubmissionState
from submissions_pipeline.failpoints import failpoint
from submissions_pipeline.resources import ArtifactStoreResource, CrmResource, JobStoreResource
from submissions_pipeline.store import JobStore, StaleState
from submissions_pipeline.store.operator import CRM_REPORTED_STATES

S = SubmissionState

#: Metadata key of the run's release verdict: clean, failed or idle (attempted nothing).
VERDICT_KEY = "release_verdict"
CLEAN, FAILED, IDLE = "clean", "failed", "idle"

UPDATE_COLUMNS = [
    "job_id",
    "case_id",
    "kind",
    "crm_status",
    "changed",
    "reference",
    "reason_code",
    "evidence_url",
    "note",
]


def read_bundle(job: Job, artifacts: ArtifactStore) -> EvidenceBundle | None:
    """The bundle evidence_bundles wrote for the job, if there is a readable one."""
    key = bundle_key(job)
    if key is None:
        return None
    try:
        return EvidenceBundle.model_validate_json(artifacts.get_bytes(key))
    except (ArtifactNotFound, ValidationError):
        return None


def mark_crm_synced(store: JobStore, job: Job, actor: str) -> None:
    """Record that a terminal failure was posted (a job moved on meanwhile is left alone)."""
    with contextlib.suppress(StaleState):
        store.mark_crm_synced(job.job_id, actor=actor)


def release_verdict(store: JobStore, oem: str, run_id: str) -> tuple[str, int]:
    """Whether this run was clean end to end, from the job store; returns (verdict, jobs).

    Clean: at least one job claimed by the run, and each one ended `crm_updated` with a
    reference, with no failure event written by any of this run's actors (a retried attempt
    inside the run counts as a failure). Idle: the run claimed nothing (it neither advances
    nor resets the gate).
    """
    jobs = store.list_jobs(oem=oem, run_id=run_id)
    if not jobs:
        return IDLE, 0
    prefix = f"dagster:{run_id}:"
    for job in jobs:
        if job.state is not S.CRM_UPDATED or not job.reference:
            return FAILED, len(jobs)
        if any(e.reason_code and e.actor.startswith(prefix) for e in store.events(job.job_id)):
            return FAILED, len(jobs)
    return CLEAN, len(jobs)


def _write(client: CrmClient, update: Any) -> tuple[bool, str | None]:
    try:
        return client.write_back(update), None
    except CrmConflict as exc:
        return False, f"conflict: {exc}"


@asset(
    partitions_def=oem_partitions,
    group_name="submissions",
    kinds={"pandas"},
    deps=[evidence_bundles],
    description="Status, reference, proof link and submitted_by_automation written back to the "
    "CRM for proven jobs; terminal failures posted with their failure object.",
)
def crm_updates(
    context: AssetExecutionContext,
    crm: CrmResource,
    job_store: JobStoreResource,
    artifacts: ArtifactStoreResource,
) -> Output[pd.DataFrame]:
    oem = context.partition_key
    actor = run_actor(context.run.run_id, "crm_updates")
    store, client, evidence = job_store.get_store(), crm.get_client(), artifacts.get_store()
    rows: list[dict[str, Any]] = []

    for job in store.list_jobs(oem=oem, states=[S.EVIDENCE_STORED]):
        row = {"job_id": job.job_id, "case_id": job.case_id, "kind": "submitted"}
        bundle = read_bundle(job, evidence)
        if bundle is None or not bundle.complete:
            rows.append({**row, "note": "awaiting a complete evidence bundle"})
            continue
        update = outcome_update(job, evidence)
        assert update is not None
        changed, conflict = _write(client, update)
        if conflict:
            context.log.warning(f"{job.case_id}: {conflict}")
            rows.append({**row, "note": conflict})
            continue
        failpoint("during_crm_write")  # the CRM has it, the job is not yet crm_updated
        try:
            job = store.transition(
                job.job_id,
                S.CRM_UPDATED,
                actor=actor,
                expected_from=S.EVIDENCE_STORED,
                step=Step.CRM_UPDATED.value,
                crm_synced_at=datetime.now(UTC),
            )
        except StaleState:
            job = store.get(job.job_id)
        rows.append(
            {
                **row,
                "crm_status": update.status.value,
                "changed": changed,
                "reference": update.reference,
                "evidence_url": update.evidence_url,
            }
        )

    for job in store.list_jobs(oem=oem, states=CRM_REPORTED_STATES):
        if not needs_crm_sync(job):
            continue
        update = outcome_update(job, evidence)
        assert update is not None
        changed, conflict = _write(client, update)
        if not conflict:
            mark_crm_synced(store, job, actor)
        rows.append(
            {
                "job_id": job.job_id,
                "case_id": job.case_id,
                "kind": "failure",
                "crm_status": update.status.value,
                "changed": changed,
                "reason_code": job.reason_code.value if job.reason_code else None,
                "evidence_url": update.evidence_url,
                "note": conflict,
            }
        )

    df = pd.DataFrame(rows, columns=UPDATE_COLUMNS)
    verdict, run_jobs = release_verdict(store, oem, context.run.run_id)
    statuses = [r["crm_status"] for r in rows if r.get("crm_status")]
    notes = [r.get("note") or "" for r in rows]
    changed = sum(bool(r.get("changed")) for r in rows)
    context.log.info(
        f"{oem}: {changed} CRM records changed ({len(statuses)} written); run verdict: {verdict}"
    )
    return Output(
        df,
        metadata={
            "written": len(statuses),
            "changed": changed,
            "submitted": statuses.count(CrmStatus.SUBMITTED.value),
            "invalid_data": statuses.count(CrmStatus.INVALID_DATA.value),
            "failed": statuses.count(CrmStatus.FAILED.value),
            "needs_attention": statuses.count(CrmStatus.NEEDS_ATTENTION.value),
            "needs_review": statuses.count(CrmStatus.NEEDS_REVIEW.value),
            "conflicts": sum(n.startswith("conflict") for n in notes),
            "awaiting_bundle": sum(n.startswith("awaiting") for n in notes),
            VERDICT_KEY: MetadataValue.text(verdict),
            "run_jobs": run_jobs,
            "dagster/row_count": len(df),
            "updates": markdown_table(
                df.to_dict("records"),
                ["case_id", "kind", "crm_status", "reference", "reason_code", "evidence_url"],
                link_column="evidence_url",
            ),
            **evidence_links(zip(df["case_id"], df["evidence_url"], strict=True)),
        },
    )
