"""Asset checks: evidence completeness (blocking), the release gate, soak, error budget, queue
age, orphaned jobs and cases for unknown OEMs, each evaluated per OEM partition."""

import warnings

from dagster import PreviewWarning

# Partitioned asset checks are a preview feature in Dagster 1.13; they are what gives each OEM
# its own check status in the UI, so we use them and keep the warning out of every log. This
# runs before any check module below is imported.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*AssetCheckSpec.*")

from submissions_pipeline.checks.crm_feed import unknown_oems  # noqa: E402
from submissions_pipeline.checks.evidence import evidence_completeness  # noqa: E402
from submissions_pipeline.checks.queue_health import (  # noqa: E402
    error_budget,
    queue_age,
    soak,
    zero_orphaned_jobs,
)
from submissions_pipeline.checks.release_gate import release_gate  # noqa: E402

ALL_CHECKS = [
    evidence_completeness,
    release_gate,
    soak,
    error_budget,
    queue_age,
    zero_orphaned_jobs,
    unknown_oems,
]

__all__ = [
    "ALL_CHECKS",
    "error_budget",
    "evidence_completeness",
    "queue_age",
    "release_gate",
    "soak",
    "unknown_oems",
    "zero_orphaned_jobs",
]
