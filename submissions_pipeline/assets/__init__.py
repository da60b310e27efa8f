"""The submission assets, per OEM partition: crm_cases -> submission_runs -> evidence_bundles ->
crm_updates, and the cross-OEM submission_report."""

from submissions_pipeline.assets.crm_cases import crm_cases
from submissions_pipeline.assets.crm_updates import crm_updates
from submissions_pipeline.assets.evidence_bundles import evidence_bundles
from submissions_pipeline.assets.partitions import oem_partitions
from submissions_pipeline.assets.submission_report import submission_report
from submissions_pipeline.assets.submission_runs import submission_runs

#: The per-OEM graph, in order; the nightly job materializes exactly these.
SUBMISSION_ASSETS = [crm_cases, submission_runs, evidence_bundles, crm_updates]
ALL_ASSETS = [*SUBMISSION_ASSETS, submission_report]

__all__ = [
    "ALL_ASSETS",
    "SUBMISSION_ASSETS",
    "crm_cases",
    "crm_updates",
    "evidence_bundles",
    "oem_partitions",
    "submission_report",
    "submission_runs",
]
