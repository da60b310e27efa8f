"""When "not found on the portal" proves a submission is absent, and when only a person can say.

After a submit click without a confirmation the portal may hold the case. Its lookup page is the
only witness, and many portals' search trails their submissions (a nightly or lagging index), so
one miss proves nothing. Each OEM declares how far its lookup may lag and how many misses, spread
over that window, prove absence; until then the job is looked up again later, and when the
policy says absence can never be proven by lookups (or the lookups run out) a person decides.
A resubmission only ever follows a proof.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class ReconciliationPolicy(BaseModel):
    """How an OEM's portal lookup may be trusted to prove a submission absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    proof: Literal["lookups", "never"] = Field(
        "lookups",
        description="lookups: enough misses over the lag window prove absence; never: a miss "
        "never does (a person decides after the first one).",
    )
    search_lag_s: float = Field(
        300.0,
        ge=0,
        description="How long the portal's lookup may trail a submission, in seconds.",
    )
    negative_lookups: int = Field(
        2, ge=1, description="Misses that prove absence, spread over at least `search_lag_s`."
    )
    flaky_lookups: int = Field(
        3,
        ge=0,
        description="Further lookup tries allowed for lookups that fail (a 503, a timeout) "
        "before a person is asked instead.",
    )

    @property
    def lookup_budget(self) -> int:
        """Claims spent on looking a case up before a person decides."""
        return self.negative_lookups + self.flaky_lookups


class LookupHistory(Protocol):
    """What a job records about its submit clicks and its negative lookups since the last one."""

    @property
    def last_submit_at(self) -> datetime | None: ...
    @property
    def lookup_misses(self) -> int: ...
    @property
    def first_miss_at(self) -> datetime | None: ...
    @property
    def last_miss_at(self) -> datetime | None: ...
    @property
    def lookup_claims(self) -> int: ...


def _lag(policy: ReconciliationPolicy, time_scale: float) -> timedelta:
    return timedelta(seconds=policy.search_lag_s * time_scale)


def absence_proven(
    policy: ReconciliationPolicy, history: LookupHistory, *, time_scale: float = 1.0
) -> bool:
    """Whether the misses recorded since the last submit click prove the portal lacks the case.

    Proof needs `negative_lookups` misses, the last one at least the lag window after the
    click, and (with two or more) the first and last at least the window apart, so that a
    lagging index has had time to catch up and one flaky search cannot decide alone.
    """
    if policy.proof == "never" or history.lookup_misses < policy.negative_lookups:
        return False
    if history.last_miss_at is None or history.last_submit_at is None:
        return False
    lag = _lag(policy, time_scale)
    if history.last_miss_at - history.last_submit_at < lag:
        return False
    if policy.negative_lookups > 1:
        assert history.first_miss_at is not None
        return history.last_miss_at - history.first_miss_at >= lag
    return True


def next_lookup_at(
    policy: ReconciliationPolicy,
    history: LookupHistory,
    now: datetime,
    *,
    time_scale: float = 1.0,
) -> datetime | None:
    """When to look the case up again after a miss that proved nothing; None: ask a person.

    Lookups are spread evenly over the lag window after the first miss (and never before the
    window after the click has passed for the last one). None when the policy never trusts a
    miss or the lookup budget is spent.
    """
    if policy.proof == "never" or history.lookup_claims >= policy.lookup_budget:
        return None
    lag = _lag(policy, time_scale)
    first = history.first_miss_at or now
    remaining = max(policy.negative_lookups - history.lookup_misses, 1)
    if policy.negative_lookups > 1:
        step = lag / (policy.negative_lookups - 1)
        target = first + step * (policy.negative_lookups - remaining)
    else:
        target = first
    if remaining == 1 and history.last_submit_at is not None:
        target = max(target, history.last_submit_at + lag)
    return max(target, now)
