"""Evidence completeness: the blocking check that keeps unproven jobs out of the CRM."""

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from submissions_pipeline.assets.evidence_bundles import evidence_bundles
from submissions_pipeline.assets.job_metrics import markdown_table
from submissions_pipeline.assets.partitions import oem_partitions


@asset_check(
    asset=evidence_bundles,
    blocking=True,
    partitions_def=oem_partitions,
    description="Every bundled job has its reference, both screenshots (or the lookup proof) "
    "and artifacts whose SHA-256 matches the manifest. Blocking: when it fails, crm_updates "
    "does not run in this run; the incomplete jobs were sent back to be re-proven through the "
    "portal's lookup page, and the next run writes every complete job to the CRM.",
)
def evidence_completeness(evidence_bundles: pd.DataFrame) -> AssetCheckResult:
    incomplete = evidence_bundles[~evidence_bundles["complete"].astype(bool)]
    return AssetCheckResult(
        passed=incomplete.empty,
        severity=AssetCheckSeverity.ERROR,
        description=None
        if incomplete.empty
        else f"{len(incomplete)} of {len(evidence_bundles)} jobs have incomplete evidence",
        metadata={
            "bundles": len(evidence_bundles),
            "incomplete": len(incomplete),
            "incomplete_jobs": markdown_table(
                incomplete.to_dict("records"), ["case_id", "job_id", "problems", "routed_to"]
            )
            if len(incomplete)
            else MetadataValue.md("_none_"),
        },
    )
