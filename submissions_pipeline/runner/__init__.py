"""The Playwright batch runner: a worker that pulls jobs and drives portals, leaving proof behind.

Dagster ops and the CLI call `run_batch(config, deps)`; no Playwright object leaves this package.
"""

from submissions_pipeline.runner.adapter import LookupResult, PortalAdapter
from submissions_pipeline.runner.batch import BatchReport, run_batch, run_batch_async
from submissions_pipeline.runner.config import (
    BatchConfig,
    BrowserSettings,
    EvidenceSettings,
    StepBudgets,
)
from submissions_pipeline.runner.deps import RunnerDeps
from submissions_pipeline.runner.job import JobOutcome

__all__ = [
    "BatchConfig",
    "BatchReport",
    "BrowserSettings",
    "EvidenceSettings",
    "JobOutcome",
    "LookupResult",
    "PortalAdapter",
    "RunnerDeps",
    "StepBudgets",
    "run_batch",
    "run_batch_async",
]
