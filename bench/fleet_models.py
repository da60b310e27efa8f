"""What fleet mode measured: one run per worker count, as plain models.

Kept apart from `fleet_bench.py` (which starts processes) so the report can carry these without
importing the machinery that produced them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class FleetRun(BaseModel):
    """W `submissions worker` processes draining the same N fresh jobs from one PostgreSQL queue.

    Wall time runs from the first claim to the last job settled (the workers' start-up and
    browser launch are outside it, as a long-lived fleet pays them once).
    """

    workers: int
    contexts_per_worker: int
    jobs: int
    search_latency_s: float
    status: Literal["ok", "failed"] = "ok"
    note: str = ""
    settled: int = Field(0, description="jobs the workers were done with (evidence or settled)")
    ok: int = Field(0, description="jobs with evidence stored and a portal reference")
    ledger_entries: int = 0
    duplicates: int = Field(0, description="cases the portal received more than once")
    missing: int = Field(0, description="enqueued cases absent from the portal's ledger")
    wall_s: float | None = None
    jobs_per_s: float | None = None
    jobs_per_hour: float | None = None
    predicted_jobs_per_hour: float | None = Field(
        None, description="workers x contexts x 3600 / mean job seconds (the notes' formula)"
    )
    mean_job_s: float | None = None
    p50_job_s: float | None = None
    p95_job_s: float | None = None
    cpu_s_per_job: float | None = Field(
        None, description="CPU s of the workers, their drivers and browsers (not the portal)"
    )
    peak_pss_mb: float | None = Field(None, description="all workers' browser trees, summed")
    jobs_by_worker: dict[str, int] = Field(default_factory=dict)
    scaling: float | None = Field(None, description="jobs/s over the one-worker run's")

    @property
    def correct(self) -> bool:
        """Every job settled and the portal holds each case exactly once."""
        return (
            self.settled == self.jobs
            and self.duplicates == 0
            and self.missing == 0
            and self.ledger_entries == self.jobs
        )
