"""`crm_cases[oem]`: new CRM cases read since a durable cursor, validated and enqueued.

Scheduling only enqueues: the workers pull the work itself from the queue. Invalid cases go
straight back to the CRM as invalid data with field-level messages; valid ones become jobs,
idempotently, and their CRM record reads "in progress". A case that changed since intake read
it comes through the feed again and is re-validated; `crm_revisions` decides what the change
means for its job. The cursor is kept in this asset's own materialization metadata
(`crm_cursor`), so it survives restarts and moves only when a materialization succeeds.

Cases filed under an OEM key no partition reads are never left behind silently: a near miss of
a registered key (`Northwind`, `northwind `) goes back to the CRM as invalid data on `oem` from
that OEM's partition, and every materialization lists the cases of OEMs that are not registered
at all (`unknown_oems`), which the `unknown_oems` check turns into a warning.
"""

import unicodedata
from collections.abc import Callable, Collection
from typing import Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    Config,
    DagsterInstance,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from submissions_pipeline.artifacts import ArtifactStore
from submissions_pipeline.assets.crm_outcomes import in_progress_update, outcome_update
from submissions_pipeline.assets.crm_revisions import (
    FLAGGED,
    REVISED,
    WITHDRAWN,
    flag_changed,
    take_invalid_revision,
    take_valid_revision,
)
from submissions_pipeline.assets.job_metrics import markdown_table
from submissions_pipeline.assets.partitions import BACKFILL_TAG, oem_partitions, run_actor
from submissions_pipeline.crm import CrmCaseRecord, CrmClient, CrmConflict, CrmStatus, CrmUpdate
from submissions_pipeline.domain import (
    SETTLED_STATES,
    CaseValidationError,
    ErrorClass,
    FailureObject,
    ReasonCode,
    SubmissionState,
    validate_case,
)
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.resources import ArtifactStoreResource, CrmResource, JobStoreResource
from submissions_pipeline.store import JobStore, StaleState

CURSOR_KEY = "crm_cursor"

#: Dead letters whose cause may have passed: a backfill (or `redrive_dead_letters`) re-drives
#: them. Adapter bugs stay parked until an engineer fixes the adapter and re-drives by hand.
RETRYABLE_CLASSES = frozenset(
    {
        ErrorClass.SITE_FLAKE,
        ErrorClass.INFRASTRUCTURE,
        ErrorClass.AUTH_FAILURE,
        ErrorClass.MISSING_EVIDENCE,
    }
)


class CrmCasesConfig(Config):
    """How one run reads the CRM (launchpad: ops.crm_cases.config)."""

    page_size: int = Field(500, ge=1, description="Cases per CRM read.")
    from_start: bool = Field(
        False,
        description="Ignore the stored cursor and read the whole feed of new cases (after the "
        "CRM was restored or replaced; processed cases are no longer new, so nothing repeats).",
    )
    redrive_dead_letters: bool = Field(
        False,
        description="Re-queue this OEM's dead-lettered jobs whose reason is retryable (site "
        "flake, infrastructure, auth, missing evidence). Backfills always do.",
    )


def last_crm_cursor(instance: DagsterInstance, asset_key: AssetKey, oem: str) -> str | None:
    """The CRM cursor the last successful materialization of this OEM's partition reached."""
    result = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=[oem]), limit=1
    )
    for record in result.records:
        materialization = record.asset_materialization
        value = materialization.metadata.get(CURSOR_KEY) if materialization else None
        text = getattr(value, "value", value)
        if isinstance(text, str) and text:
            return text
    return None


def _write(crm: CrmClient, update: CrmUpdate) -> str:
    try:
        crm.write_back(update)
    except CrmConflict as exc:
        return f"conflict: {exc}"
    return update.status.value


def identity_errors(record: CrmCaseRecord, oem: str | None = None) -> dict[str, str]:
    """Field messages for a record whose keys are not exactly the ones the CRM files it under.

    The case id and the OEM key name the CRM record every write-back goes to and the feed it is
    read from, so the pipeline uses them exactly as filed; `oem` is the partition's registered
    key, for a record read from a near-miss feed (`Northwind`, `northwind `).
    """
    errors: dict[str, str] = {}
    for field, filed in (("case_id", record.case_id), ("oem", record.oem)):
        entered = record.raw.get(field)
        if entered != filed:
            errors[field] = f"{entered!r} is not the key the CRM files this case under ({filed!r})"
    if oem is not None and record.oem != oem:
        errors["oem"] = (
            f"{record.oem!r} is not a registered OEM key; did you mean {oem!r}? OEM keys are "
            "matched exactly, so no run picks this case up until the key is corrected"
        )
    return errors


def _invalid(record: CrmCaseRecord, fields: dict[str, str], message: str) -> CrmUpdate:
    """The invalid-data write-back; it answers for the revision read, so the case leaves the
    feed until it is entered again."""
    failure = FailureObject.of(
        ReasonCode.CASE_INVALID,
        message,
        case_id=record.case_id,
        oem=record.oem,
        field_errors=fields,
    )
    return CrmUpdate(
        case_id=record.case_id,
        status=CrmStatus.INVALID_DATA,
        failure=failure,
        field_errors=fields,
        revision=record.revision,
    )


def intake_case(
    record: CrmCaseRecord,
    *,
    store: JobStore,
    crm: CrmClient,
    artifacts: ArtifactStore,
    actor: str,
    oem: str | None = None,
) -> dict[str, Any]:
    """Validate one CRM record and either enqueue it or send it back; returns its table row.

    `oem` is the partition reading the record: a record filed under another OEM key (a
    near-miss of it) goes back as invalid data on `oem`. A changed record (a new revision) may
    replace its job's version, withdraw the job, or be flagged for a person instead.
    """
    row: dict[str, Any] = {
        "case_id": record.case_id,
        "sequence": record.sequence,
        "valid": True,
        "job_id": None,
        "job_state": None,
        "created": False,
        "crm_status": None,
        "field_errors": "",
        "revision_note": REVISED if record.changed else None,
    }
    case, fields = None, identity_errors(record, oem)
    try:
        case = validate_case(record.raw)
    except CaseValidationError as err:
        fields = {**err.as_dict(), **fields}
    if case is None or fields:
        listed = "; ".join(f"{k}: {v}" for k, v in fields.items())
        row.update(valid=False, field_errors=listed)
        if record.changed and (
            taken := take_invalid_revision(
                record, fields, store=store, crm=crm, artifacts=artifacts, actor=actor
            )
        ):
            return {**row, **taken}
        row["crm_status"] = _write(
            crm, _invalid(record, fields, f"case {record.case_id!r} is invalid: {listed}")
        )
        return row

    if record.changed and (
        taken := take_valid_revision(record, case, store=store, crm=crm, actor=actor)
    ):
        return {**row, **taken}
    result = store.enqueue(case, actor=actor)
    job = store.get(result.job_id)
    row.update(job_id=job.job_id, job_state=job.state.value, created=result.created)
    if record.changed and job.idempotency_key != case.idempotency_key():
        # The job of an earlier version stood after all (it moved on meanwhile): flag the case
        # rather than report the earlier version's progress as this one's.
        return {**row, **flag_changed(crm, record, job, case)}
    # A case that comes back after its job finished (a reset test record, a re-sent case) is
    # never submitted again: the CRM gets the finished job's outcome instead.
    update = outcome_update(job, artifacts) if job.state in SETTLED_STATES else None
    update = (update or in_progress_update(job)).model_copy(update={"revision": record.revision})
    row["crm_status"] = _write(crm, update)
    return row


def registered_key_for(key: str, registered: Collection[str]) -> str | None:
    """The registered OEM key that `key` misses only by letter case, whitespace or Unicode
    compatibility form (`Northwind`, ` northwind`, fullwidth letters), or None."""
    folded = "".join(unicodedata.normalize("NFKC", key).casefold().split())
    return folded if folded != key and folded in registered else None


def unrouted_oems(
    crm: CrmClient, registered: Collection[str]
) -> tuple[dict[str, str], dict[str, int]]:
    """The OEM keys of cases no partition reads: near misses (key -> the registered key they
    miss) and unknown OEMs (key -> cases waiting)."""
    near: dict[str, str] = {}
    unknown: dict[str, int] = {}
    for key, count in crm.count_unrouted_cases(registered).items():
        target = registered_key_for(key, registered)
        if target is None:
            unknown[key] = count
        else:
            near[key] = target
    return near, unknown


def read_feed(
    crm: CrmClient,
    oem_key: str,
    cursor: str | None,
    page_size: int,
    handle: Callable[[CrmCaseRecord], dict[str, Any]],
) -> tuple[list[dict[str, Any]], str | None]:
    """Hand every case of one feed after `cursor` to `handle`; (its rows, the cursor reached)."""
    rows: list[dict[str, Any]] = []
    while True:
        page = crm.list_new_cases(oem_key, cursor, limit=page_size)
        if not page.records:
            return rows, cursor
        rows += [handle(record) for record in page.records]
        cursor = page.next_cursor


def redrive_retryable(store: JobStore, oem: str, actor: str) -> list[str]:
    """Re-queue the OEM's dead letters whose failure may have passed; returns their job ids."""
    redriven = []
    for job in store.list_jobs(oem=oem, states=[SubmissionState.DEAD_LETTERED]):
        if job.reason_code is None or job.reason_code.error_class not in RETRYABLE_CLASSES:
            continue
        try:
            store.redrive(job.job_id, actor=actor)
        except StaleState:
            continue
        redriven.append(job.job_id)
    return redriven


@asset(
    partitions_def=oem_partitions,
    group_name="submissions",
    kinds={"pandas"},
    description="New and changed CRM cases of one OEM since the last cursor: validated, "
    "enqueued as jobs (idempotent) or revised, invalid ones returned to the CRM with field-level "
    "messages; cases filed under an OEM key nobody reads are returned or listed.",
)
def crm_cases(
    context: AssetExecutionContext,
    config: CrmCasesConfig,
    crm: CrmResource,
    job_store: JobStoreResource,
    artifacts: ArtifactStoreResource,
) -> Output[pd.DataFrame]:
    oem = context.partition_key
    actor = run_actor(context.run.run_id, "crm_cases")
    store, client, evidence = job_store.get_store(), crm.get_client(), artifacts.get_store()
    start_cursor = cursor = (
        None if config.from_start else last_crm_cursor(context.instance, context.asset_key, oem)
    )

    def intake(record: CrmCaseRecord) -> dict[str, Any]:
        return intake_case(
            record, store=store, crm=client, artifacts=evidence, actor=actor, oem=oem
        )

    rows, cursor = read_feed(client, oem, cursor, config.page_size, intake)
    # Near misses of this OEM's key leave their feed once answered: read it from the start.
    near, unknown = unrouted_oems(client, oem_registry().oem_keys())
    misfiled: list[dict[str, Any]] = []
    for key in sorted(k for k, target in near.items() if target == oem):
        misfiled += read_feed(client, key, None, config.page_size, intake)[0]
    rows += misfiled
    if unknown:
        context.log.warning(
            f"{sum(unknown.values())} CRM cases wait for OEMs that are not registered, so no "
            f"run reads them: {unknown}"
        )

    redriven: list[str] = []
    if config.redrive_dead_letters or context.run.tags.get(BACKFILL_TAG):
        redriven = redrive_retryable(store, oem, actor)

    df = pd.DataFrame(
        rows,
        columns=[
            "case_id",
            "sequence",
            "valid",
            "job_id",
            "job_state",
            "created",
            "crm_status",
            "field_errors",
            "revision_note",
        ],
    )
    stats = store.stats(oem=oem)
    valid = int(df["valid"].sum()) if len(df) else 0
    context.log.info(
        f"{oem}: read {len(df)} new cases after cursor {start_cursor!r}: {valid} valid, "
        f"{len(df) - valid} returned as invalid; {len(redriven)} dead letters re-driven; "
        f"{stats.due_now} jobs due"
    )
    return Output(
        df,
        metadata={
            CURSOR_KEY: MetadataValue.text(cursor or ""),
            "cases_read": len(df),
            "valid": valid,
            "invalid": len(df) - valid,
            "enqueued": int(df["created"].sum()) if len(df) else 0,
            "already_known": int((df["valid"] & ~df["created"]).sum()) if len(df) else 0,
            "revised": int((df["revision_note"] == REVISED).sum()),
            "withdrawn": int((df["revision_note"] == WITHDRAWN).sum()),
            "changed_after_submission": int((df["revision_note"] == FLAGGED).sum()),
            "misfiled_oem": len(misfiled),
            "unknown_oems": MetadataValue.json(unknown),
            "unknown_oem_cases": sum(unknown.values()),
            "redriven": len(redriven),
            "due_now": stats.due_now,
            "oldest_due_age_s": float(stats.oldest_due_age_s or 0.0),
            "dagster/row_count": len(df),
            "cases": markdown_table(
                df.to_dict("records"),
                [
                    "case_id",
                    "valid",
                    "job_state",
                    "created",
                    "crm_status",
                    "field_errors",
                    "revision_note",
                ],
            ),
        },
    )
