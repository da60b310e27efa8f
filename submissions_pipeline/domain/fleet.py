"""The fleet's rules: how many workers a backlog needs, and the portals' concurrency caps.

One pure function, `desired_workers`, decides the fleet size. The Dagster planner, `submissions
fleet plan`, a worker's `/metrics` and the KEDA query (`store/fleet.py` writes it in SQL) all
compute the same number, so what an operator reads is what the autoscaler does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ConcurrencyCaps(BaseModel):
    """Sessions a portal tolerates, fleet-wide: enforced by the queue's claim, whatever the
    number of workers (a portal that allows one session per dealer, or throttles an OEM)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_sessions: int | None = Field(
        None, ge=1, description="Jobs of this OEM leased at once across the fleet (None: any)."
    )
    max_per_dealer: int | None = Field(
        None, ge=1, description="Jobs of one dealer leased at once across the fleet (None: any)."
    )

    @property
    def capped(self) -> bool:
        """Whether the claim has anything to enforce."""
        return self.max_sessions is not None or self.max_per_dealer is not None


class FleetPolicy(BaseModel):
    """Bounds and guardrails of the autoscaler; the same values go into the KEDA object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_workers: int = Field(0, ge=0, description="Floor; 0 scales to zero when nothing is due.")
    max_workers: int = Field(10, ge=1, description="Ceiling: the cluster's and the DB's budget.")
    contexts_per_worker: int = Field(3, ge=1, description="Browser contexts each worker runs.")
    default_p95_s: float = Field(
        60.0, gt=0, description="Job time assumed before any job has finished."
    )
    max_step_up: int | None = Field(
        None,
        ge=1,
        description="Workers added at most per decision (burst-storm guardrail); in Kubernetes "
        "the HPA behaviour section applies it, since a query cannot see the replica count.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> FleetPolicy:
        if self.min_workers > self.max_workers:
            raise ValueError("min_workers must not exceed max_workers")
        return self


class Backlog(BaseModel):
    """What the queue holds for one OEM at one moment: the policy's inputs."""

    due: int = Field(ge=0, description="Claimable jobs whose time has come.")
    in_flight: int = Field(0, ge=0, description="Jobs leased to workers now.")
    p95_s: float | None = Field(None, description="p95 job time (None: nothing measured yet).")
    seconds_left: float = Field(
        description="Seconds before the OEM's business hours start ('done by morning')."
    )
    oem_cap: int | None = Field(None, description="The OEM's fleet-wide session cap, if any.")


def desired_workers(backlog: Backlog, policy: FleetPolicy, current: int | None = None) -> int:
    """Workers needed to finish the backlog before business hours, within the bounds.

    Contexts needed = ceil(work x p95 / max(time left, p95)): enough parallel contexts that the
    work fits in the time left, and every job in parallel once less than one job time is left.
    They are capped by the work itself and the OEM's session cap (more would idle), then turned
    into workers of `contexts_per_worker` each. Nothing due and nothing running: `min_workers`
    (scale to zero). With `current` known, the step-up guardrail limits growth per decision.
    """
    work = backlog.due + backlog.in_flight
    if work == 0:
        return policy.min_workers
    p95 = backlog.p95_s if backlog.p95_s is not None else policy.default_p95_s
    needed = math.ceil(work * p95 / max(backlog.seconds_left, p95))
    useful = work if backlog.oem_cap is None else min(work, backlog.oem_cap)
    contexts = min(needed, useful)
    workers = math.ceil(contexts / policy.contexts_per_worker)
    workers = max(policy.min_workers, 1, min(policy.max_workers, workers))
    if current is not None and policy.max_step_up is not None:
        workers = min(workers, max(current, policy.min_workers) + policy.max_step_up)
    return workers


def seconds_until_business_hours(now: datetime, start: time, timezone: str) -> float:
    """Seconds from `now` to the next local `start` in `timezone` (tomorrow's, once passed)."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    target = datetime.combine(local.date(), start, tzinfo=zone)
    if local.time() >= start:
        target = datetime.combine(local.date() + timedelta(days=1), start, tzinfo=zone)
    return (target - now).total_seconds()


def fleet_concurrency(workers: int, contexts_per_worker: int, oem_cap: int | None = None) -> int:
    """Jobs the fleet runs at once for one OEM: its contexts, within the OEM's session cap (at
    least one, so an idle fleet still has a finishing time to compare due dates with)."""
    contexts = max(1, workers * contexts_per_worker)
    return contexts if oem_cap is None else max(1, min(contexts, oem_cap))


def jobs_at_risk(
    queue: Sequence[tuple[str, datetime | None]],
    *,
    now: datetime,
    p95_s: float,
    concurrency: int,
) -> list[str]:
    """Ids of the queued jobs expected to finish after their due date, in queue order.

    `queue` is (job id, due date) in claim order. The job at position k (1 for the next one)
    is expected to finish at now + k x p95 / concurrency: the jobs ahead of it share the
    fleet's contexts, each taking about the p95 job time. Past its due date, the job is at
    risk and a person can act (raise its priority, add workers) before the deadline passes.
    Jobs without a due date are never at risk.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if p95_s <= 0:
        raise ValueError("p95_s must be positive")
    return [
        job_id
        for k, (job_id, due) in enumerate(queue, start=1)
        if due is not None and now + timedelta(seconds=k * p95_s / concurrency) > due
    ]
