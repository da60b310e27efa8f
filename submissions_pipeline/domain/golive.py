"""The go-live watch: once an OEM's first five consecutive clean runs are in, their success
rate and p95 time-to-submit (overall and per step) become its baseline; later runs that fall
below or above it by the OEM's thresholds raise a drift warning."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

#: Consecutive clean runs that make the baseline (the release gate's count).
BASELINE_RUNS = 5


class GoLiveThresholds(BaseModel):
    """When a run has drifted from the OEM's baseline (`[golive]` in oem.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_success_ratio: float = Field(
        0.9, gt=0, le=1, description="Warn below this share of the baseline success rate."
    )
    max_p95_ratio: float = Field(
        1.5, gt=1, description="Warn above this multiple of the baseline p95 time-to-submit."
    )


class RunStats(BaseModel):
    """One run of one OEM: how many attempts, how many submitted, how long they took."""

    attempts: int
    submitted: int
    p95_s: float
    step_p95_s: dict[str, float] = Field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return self.submitted / self.attempts if self.attempts else 0.0

    @property
    def clean(self) -> bool:
        """Every attempt submitted with proof (an empty run is not clean, only idle)."""
        return self.attempts > 0 and self.submitted == self.attempts

    @classmethod
    def of(cls, attempts: list[tuple[bool, float, dict[str, float]]]) -> RunStats:
        """From (submitted?, seconds, seconds per step) per attempt; times of submitted ones."""
        done = [(s, steps) for ok, s, steps in attempts if ok]
        steps: dict[str, list[float]] = {}
        for _, per_step in done:
            for name, seconds in per_step.items():
                steps.setdefault(name, []).append(seconds)
        return cls(
            attempts=len(attempts),
            submitted=len(done),
            p95_s=p95([s for s, _ in done]),
            step_p95_s={name: p95(values) for name, values in sorted(steps.items())},
        )


class GoLiveBaseline(BaseModel):
    """What the OEM looked like when it went live."""

    oem: str
    recorded_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    runs: int
    success_rate: float
    p95_s: float
    step_p95_s: dict[str, float]

    @classmethod
    def of(cls, oem: str, runs: list[RunStats]) -> GoLiveBaseline:
        attempts = sum(r.attempts for r in runs)
        steps = sorted({s for r in runs for s in r.step_p95_s})
        return cls(
            oem=oem,
            runs=len(runs),
            success_rate=sum(r.submitted for r in runs) / attempts if attempts else 0.0,
            p95_s=max(r.p95_s for r in runs),
            step_p95_s={s: max(r.step_p95_s.get(s, 0.0) for r in runs) for s in steps},
        )


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def drift_warnings(
    baseline: GoLiveBaseline, run: RunStats, thresholds: GoLiveThresholds
) -> list[str]:
    """Sentences for every way this run fell out of the baseline's band; empty when it held."""
    out = []
    if run.attempts and run.success_rate < thresholds.min_success_ratio * baseline.success_rate:
        out.append(
            f"{baseline.oem}: success rate {run.success_rate:.0%} is below "
            f"{thresholds.min_success_ratio:.0%} of the baseline {baseline.success_rate:.0%}"
        )
    if run.submitted and run.p95_s > thresholds.max_p95_ratio * baseline.p95_s:
        slow = [
            f"{step} {seconds:.2f}s (baseline {baseline.step_p95_s[step]:.2f}s)"
            for step, seconds in run.step_p95_s.items()
            if seconds > thresholds.max_p95_ratio * baseline.step_p95_s.get(step, math.inf)
        ]
        out.append(
            f"{baseline.oem}: p95 time-to-submit {run.p95_s:.2f}s is above "
            f"{thresholds.max_p95_ratio:g}x the baseline {baseline.p95_s:.2f}s"
            + (f"; slower steps: {', '.join(slow)}" if slow else "")
        )
    return out
