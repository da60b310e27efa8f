"""The retry budget: how many attempts a job gets and when the next one comes due."""

from __future__ import annotations

from datetime import datetime, timedelta
from random import Random

from pydantic import BaseModel, Field, model_validator


class RetryPolicy(BaseModel):
    """Three attempts, exponential backoff plus 2-10 minutes of jitter.

    The delay after failed attempt n (1-based) is
    ``min(base * 2**(n-1), max_backoff) + uniform(jitter_min, jitter_max)``, all multiplied by
    ``time_scale`` (1.0 in production; the soak scales it down to finish in minutes). Jitter
    spreads retries of one nightly batch so they don't hit a recovering portal at once.
    """

    max_attempts: int = Field(3, ge=1, description="Attempts per job, the first one included.")
    base_backoff_s: float = Field(120.0, ge=0, description="Backoff after the first failure.")
    max_backoff_s: float = Field(1800.0, ge=0, description="Cap on the exponential part.")
    jitter_min_s: float = Field(120.0, ge=0, description="Lower bound of the added jitter.")
    jitter_max_s: float = Field(600.0, ge=0, description="Upper bound of the added jitter.")
    reconcile_attempts: int = Field(
        3, ge=0, description="Extra attempts a job that may be on the portal gets for lookups."
    )
    reconcile_delay_s: float = Field(
        120.0, ge=0, description="Wait before looking up an ambiguous submit on the portal."
    )
    time_scale: float = Field(1.0, gt=0, description="Multiplies every delay (soak/tests only).")

    @model_validator(mode="after")
    def _jitter_bounds(self) -> RetryPolicy:
        if self.jitter_max_s < self.jitter_min_s:
            raise ValueError("jitter_max_s must be >= jitter_min_s")
        return self

    def may_retry(self, attempt: int) -> bool:
        """Whether another attempt is allowed after attempt number `attempt` failed."""
        return attempt < self.max_attempts

    def backoff_s(self, attempt: int) -> float:
        """The exponential part of the delay after attempt `attempt`, before jitter and scale."""
        return min(self.base_backoff_s * 2 ** max(attempt - 1, 0), self.max_backoff_s)

    def delay_bounds_s(self, attempt: int) -> tuple[float, float]:
        """The smallest and largest possible delay after attempt `attempt`, scale applied."""
        b = self.backoff_s(attempt)
        return (
            (b + self.jitter_min_s) * self.time_scale,
            (b + self.jitter_max_s) * self.time_scale,
        )

    def delay_s(self, attempt: int, rng: Random) -> float:
        """The delay after attempt `attempt`, drawn from `rng` so tests can seed it."""
        jitter = rng.uniform(self.jitter_min_s, self.jitter_max_s)
        return (self.backoff_s(attempt) + jitter) * self.time_scale

    def reconcile_at(self, now: datetime) -> datetime:
        """When to look an ambiguous submit up: portals often list a submission a bit later."""
        return now + timedelta(seconds=self.reconcile_delay_s * self.time_scale)

    def next_attempt_at(self, attempt: int, now: datetime, rng: Random) -> datetime:
        """When the next attempt comes due after attempt `attempt` failed at `now`."""
        return now + timedelta(seconds=self.delay_s(attempt, rng))
