"""`submission_report`: outcomes across OEMs, segmented by who submitted, OEM and reason code.

Automation and human submissions are counted apart (so neither hides the other), from
the CRM (who submitted) joined with the job store (what the automation did and why it failed).
"""

import math
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from submissions_pipeline.assets.crm_updates import crm_updates
from submissions_pipeline.assets.job_metrics import markdown_table, timing_metadata
from submissions_pipeline.crm import CrmCaseRecord, CrmClient, CrmStatus
from submissions_pipeline.domain import Job
from submissions_pipeline.resources import CrmResource, JobStoreResource

REPORT_COLUMNS = ["oem", "submitted_by", "outcome", "reason_code", "error_class", "cases"]
OPEN_STATUSES = {CrmStatus.NEW.value, CrmStatus.IN_PROGRESS.value}


def _crm_cases(client: CrmClient) -> list[CrmCaseRecord] | None:
    # Listing every case is not part of the CrmClient contract yet; the embedded CRM has it.
    list_cases = getattr(client, "list_cases", None)
    return list(list_cases()) if callable(list_cases) else None


def case_outcomes(jobs: list[Job], cases: list[CrmCaseRecord] | None) -> pd.DataFrame:
    """One row per case: its OEM, who submitted it, where it stands and why it failed."""
    latest: dict[str, Job] = {}
    for job in sorted(jobs, key=lambda j: j.created_at):
        latest[job.case_id] = job
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for case in cases or []:
        job = latest.get(case.case_id)
        seen.add(case.case_id)
        if case.status is CrmStatus.HUMAN_SUBMITTED:
            by = "human"
        elif case.submitted_by_automation or (job is not None and job.submitted_by_automation):
            by = "automation"
        else:
            by = "not_submitted"
        failure = job.failure if job is not None else case.failure
        rows.append(
            {
                "oem": case.oem,
                "case_id": case.case_id,
                "submitted_by": by,
                "outcome": case.status.value,
                "job_state": job.state.value if job else None,
                "reason_code": failure.reason_code.value if failure else None,
                "error_class": failure.error_class.value if failure else None,
                "duration_s": job.duration_s if job else None,
            }
        )
    for case_id, job in latest.items():
        if case_id in seen:
            continue
        rows.append(
            {
                "oem": job.oem,
                "case_id": case_id,
                "submitted_by": "automation" if job.submitted_by_automation else "not_submitted",
                "outcome": job.state.value,
                "job_state": job.state.value,
                "reason_code": job.reason_code.value if job.reason_code else None,
                "error_class": job.reason_code.error_class.value if job.reason_code else None,
                "duration_s": job.duration_s,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "oem",
            "case_id",
            "submitted_by",
            "outcome",
            "job_state",
            "reason_code",
            "error_class",
            "duration_s",
        ],
    )


def segment(cases: pd.DataFrame) -> pd.DataFrame:
    """Case counts by OEM, submitter, outcome and reason code."""
    if cases.empty:
        return pd.DataFrame(columns=REPORT_COLUMNS)
    keyed = cases.fillna({"reason_code": "", "error_class": ""})
    out = (
        keyed.groupby(["oem", "submitted_by", "outcome", "reason_code", "error_class"])
        .size()
        .reset_index(name="cases")
    )
    return out[REPORT_COLUMNS]


def per_oem(cases: pd.DataFrame) -> list[dict[str, Any]]:
    """One summary row per OEM for the report's table."""
    out = []
    for oem, g in cases.groupby("oem"):
        automated = int((g["submitted_by"] == "automation").sum())
        decided = automated + int(
            g["outcome"].isin(["failed", "needs_attention", "invalid_data"]).sum()
        )
        p95 = timing_metadata(list(g["duration_s"].dropna()), 1)["p95_job_s"]
        out.append(
            {
                "oem": oem,
                "cases": len(g),
                "automation": automated,
                "human": int((g["submitted_by"] == "human").sum()),
                "invalid_data": int((g["outcome"] == "invalid_data").sum()),
                "failed": int((g["outcome"] == "failed").sum()),
                "needs_attention": int((g["outcome"] == "needs_attention").sum()),
                "open": int(g["outcome"].isin(OPEN_STATUSES).sum()),
                "automation_success_rate": automated / decided if decided else math.nan,
                "p95_job_s": p95,
            }
        )
    return out


@asset(
    group_name="reporting",
    kinds={"pandas"},
    deps=[crm_updates],
    description="Outcomes of every OEM segmented by automation vs human submission, OEM and "
    "reason code.",
)
def submission_report(
    context: AssetExecutionContext, crm: CrmResource, job_store: JobStoreResource
) -> Output[pd.DataFrame]:
    jobs = job_store.get_store().list_jobs()
    crm_cases = _crm_cases(crm.get_client())
    cases = case_outcomes(jobs, crm_cases)
    report = segment(cases)
    by = cases["submitted_by"].value_counts().to_dict() if len(cases) else {}
    automated, human = int(by.get("automation", 0)), int(by.get("human", 0))
    failures = cases[cases["reason_code"].notna()]
    reasons = (
        failures.groupby(["oem", "reason_code", "error_class"]).size().reset_index(name="cases")
        if len(failures)
        else pd.DataFrame(columns=["oem", "reason_code", "error_class", "cases"])
    )
    context.log.info(f"report: {len(cases)} cases, {automated} by automation, {human} by hand")
    return Output(
        report,
        metadata={
            "cases": len(cases),
            "submitted_by_automation": automated,
            "submitted_by_human": human,
            "not_submitted": int(by.get("not_submitted", 0)),
            "automation_share": automated / (automated + human) if automated + human else math.nan,
            "open_cases": int(cases["outcome"].isin(OPEN_STATUSES).sum()) if len(cases) else 0,
            "failures_with_reason": len(failures),
            "by_oem": markdown_table(
                per_oem(cases),
                [
                    "oem",
                    "cases",
                    "automation",
                    "human",
                    "invalid_data",
                    "failed",
                    "needs_attention",
                    "open",
                    "automation_success_rate",
                    "p95_job_s",
                ],
            ),
            "by_reason_code": markdown_table(
                reasons.to_dict("records"), ["oem", "reason_code", "error_class", "cases"]
            ),
            "crm_source": MetadataValue.text(
                "CRM cases joined with jobs" if crm_cases is not None else "jobs only"
            ),
            "dagster/row_count": len(report),
        },
    )
