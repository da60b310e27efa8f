"""What one variant run measured, job by job: plain data shared by baselines and project variants.

Standard library only, so the raw-Playwright baselines stay free of project code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Steps in the order a job goes through them (runner names; baselines use the same).
STEP_ORDER = (
    "login",
    "search",
    "fill",
    "pre_submit_evidence",
    "submit",
    "confirm",
    "post_confirm_evidence",
    "evidence_upload",
)


@dataclass
class JobTiming:
    """One job as the variant saw it: outcome, wall seconds, seconds per named step."""

    case_id: str
    ok: bool
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)
    reference: str | None = None
    #: CPU seconds per named step (measured at cap 1 only, where steps do not overlap).
    step_cpu: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass
class VariantRun:
    """One variant over the N jobs: wall time from start (driver + browser launch) to the end."""

    wall_s: float
    jobs: list[JobTiming]
    concurrency: int
    browser_launches: int = 0
    note: str = ""
    #: CPU seconds of this process and its descendants (sampled while they run), timed section.
    cpu_s: float | None = None
