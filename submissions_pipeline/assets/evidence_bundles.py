"""`evidence_bundles[oem]`: every proven job's evidence re-read, hashed and bundled for audit.

Works on the OEM's jobs in `evidence_stored` — those that reached it in this run and any left
unbundled by an earlier one — so a re-run or backfill repeats nothing that is already done
(a job leaves `evidence_stored` only when its CRM update is written). For each job it re-reads
every artifact the job store's copy of the manifest lists, checks its SHA-256 and size, checks
the reference and the required screenshots, and writes one bundle manifest beside the evidence.
A job whose evidence is incomplete is routed as `evidence_missing` (a retry reconciles through
the portal's lookup page) and the blocking `evidence_completeness` check stops CRM updates.
"""

import hashlib
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, Output, asset
from pydantic import BaseModel, Field, ValidationError

from submissions_pipeline.artifacts import ArtifactNotFound, ArtifactStore
from submissions_pipeline.assets.crm_outcomes import bundle_key, proof_url
from submissions_pipeline.assets.job_metrics import evidence_links, markdown_table
from submissions_pipeline.assets.partitions import oem_partitions, run_actor
from submissions_pipeline.assets.submission_runs import submission_runs
from submissions_pipeline.domain import (
    FailureObject,
    IllegalTransition,
    Job,
    ReasonCode,
    SubmissionState,
)
from submissions_pipeline.domain.evidence import EvidenceItem, EvidenceManifest
from submissions_pipeline.resources import ArtifactStoreResource, JobStoreResource
from submissions_pipeline.store import JobStore, StaleState

BUNDLE_COLUMNS = [
    "job_id",
    "case_id",
    "attempt",
    "reference",
    "complete",
    "problems",
    "items",
    "bytes",
    "bundle_key",
    "evidence_url",
    "routed_to",
]


class EvidenceBundle(BaseModel):
    """One job's verified proof, written as `bundle.json` beside the attempt's evidence."""

    job_id: str
    case_id: str
    oem: str
    attempt: int
    reference: str | None
    reconciled: bool = False
    submitted_in_run: str | None = Field(None, description="Dagster run that claimed the job.")
    manifest_key: str | None
    complete: bool
    problems: list[str] = Field(default_factory=list)
    items: list[EvidenceItem] = Field(default_factory=list, description="Verified artifacts.")
    total_bytes: int = 0
    verified_at: datetime
    verified_by: str = Field(description="Who verified: the Dagster step's actor id.")


def _manifest_copy(job: Job) -> EvidenceManifest | None:
    record: dict[str, Any] = {k: v for k, v in (job.evidence or {}).items() if k != "manifest_key"}
    try:
        return EvidenceManifest.model_validate(record)
    except ValidationError:
        return None


def verify_evidence(job: Job, artifacts: ArtifactStore, verified_by: str) -> EvidenceBundle:
    """Re-read and hash every artifact of the job's proven attempt; list what is wrong.

    The job store's copy of the manifest is the record of truth for the hashes (it was written
    in the same transaction as the state); the stored manifest file and each artifact must
    match it. Raises ArtifactStoreUnavailable when the store cannot be read (try again later),
    never marks evidence incomplete for that.
    """
    problems: list[str] = []
    verified: list[EvidenceItem] = []
    manifest_key = (job.evidence or {}).get("manifest_key")
    manifest = _manifest_copy(job)
    if manifest is None or not manifest_key:
        problems.append("no evidence manifest recorded for the job")
    else:
        try:
            stored = EvidenceManifest.model_validate_json(artifacts.get_bytes(manifest_key))
            if {(i.name, i.sha256) for i in stored.items} != {
                (i.name, i.sha256) for i in manifest.items
            }:
                problems.append("manifest.json differs from the job store's copy")
        except ArtifactNotFound:
            problems.append("manifest.json missing from the artifact store")
        except ValidationError:
            problems.append("manifest.json is not a valid evidence manifest")
        for item in manifest.items:
            try:
                data = artifacts.get_bytes(item.key)
            except ArtifactNotFound:
                problems.append(f"{item.name} missing from the artifact store")
                continue
            if hashlib.sha256(data).hexdigest() != item.sha256:
                problems.append(f"{item.name} SHA-256 does not match the manifest")
            elif len(data) != item.size:
                problems.append(f"{item.name} size does not match the manifest")
            else:
                verified.append(item)
        problems.extend(f"{name} missing" for name in manifest.missing_for_success())
        if manifest.reference and job.reference and manifest.reference != job.reference:
            problems.append("reference in the evidence differs from the job's reference")
    if not job.reference:
        problems.append("job has no reference")
    problems = list(dict.fromkeys(problems))  # "reference missing" may come twice
    return EvidenceBundle(
        job_id=job.job_id,
        case_id=job.case_id,
        oem=job.oem,
        attempt=job.attempt,
        reference=job.reference,
        reconciled=bool(manifest and manifest.reconciled),
        submitted_in_run=job.run_id,
        manifest_key=manifest_key,
        complete=not problems,
        problems=problems,
        items=verified,
        total_bytes=sum(i.size for i in verified),
        verified_at=datetime.now(UTC),
        verified_by=verified_by,
    )


def route_incomplete(store: JobStore, job: Job, bundle: EvidenceBundle, actor: str) -> str:
    """Send a job with incomplete evidence back through the retry path; returns its new state.

    The portal holds the submission, so the retry reconciles through its lookup page rather
    than submitting again. If the store's state machine refuses the move, the job stays in
    `evidence_stored` and the blocking check keeps it out of the CRM.
    """
    failure = FailureObject.of(
        ReasonCode.EVIDENCE_MISSING,
        "evidence incomplete: " + "; ".join(bundle.problems),
        job_id=job.job_id,
        case_id=job.case_id,
        oem=job.oem,
        attempt=job.attempt,
        last_step="evidence_bundle",
        artifacts={i.name: i.key for i in bundle.items},
    )
    try:
        routed, _ = store.record_failure(job.job_id, failure, actor=actor)
    except (IllegalTransition, StaleState):
        return store.get(job.job_id).state.value
    return routed.state.value


@asset(
    partitions_def=oem_partitions,
    group_name="submissions",
    kinds={"pandas"},
    deps=[submission_runs],
    description="Each proven job's evidence re-read and SHA-256-verified from the artifact "
    "store, with one bundle manifest written per job; incomplete evidence fails the job.",
)
def evidence_bundles(
    context: AssetExecutionContext,
    job_store: JobStoreResource,
    artifacts: ArtifactStoreResource,
) -> Output[pd.DataFrame]:
    oem = context.partition_key
    actor = run_actor(context.run.run_id, "evidence_bundles")
    store, evidence = job_store.get_store(), artifacts.get_store()
    rows: list[dict[str, Any]] = []
    for job in store.list_jobs(oem=oem, states=[SubmissionState.EVIDENCE_STORED]):
        bundle = verify_evidence(job, evidence, actor)
        key = bundle_key(job)
        if key is not None:
            evidence.put_bytes(key, bundle.model_dump_json(indent=2).encode(), "application/json")
        routed_to = None
        if not bundle.complete:
            routed_to = route_incomplete(store, job, bundle, actor)
            context.log.error(
                f"{job.case_id} (job {job.job_id}): evidence incomplete: "
                f"{'; '.join(bundle.problems)}; job now {routed_to}"
            )
        rows.append(
            {
                "job_id": job.job_id,
                "case_id": job.case_id,
                "attempt": job.attempt,
                "reference": job.reference,
                "complete": bundle.complete,
                "problems": "; ".join(bundle.problems),
                "items": len(bundle.items),
                "bytes": bundle.total_bytes,
                "bundle_key": key,
                "evidence_url": proof_url(job, evidence),
                "routed_to": routed_to,
            }
        )
    df = pd.DataFrame(rows, columns=BUNDLE_COLUMNS)
    complete = int(df["complete"].sum()) if len(df) else 0
    context.log.info(f"{oem}: {len(df)} bundles written, {len(df) - complete} incomplete")
    return Output(
        df,
        metadata={
            "bundles": len(df),
            "complete": complete,
            "incomplete": len(df) - complete,
            "bytes_verified": int(df["bytes"].sum()) if len(df) else 0,
            "artifacts_verified": int(df["items"].sum()) if len(df) else 0,
            "dagster/row_count": len(df),
            "bundles_table": markdown_table(
                df.to_dict("records"),
                ["case_id", "reference", "complete", "items", "problems", "evidence_url"],
                link_column="evidence_url",
            ),
            **evidence_links(zip(df["case_id"], df["evidence_url"], strict=True)),
        },
    )
