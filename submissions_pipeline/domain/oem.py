"""An OEM's own settings: how people name it, when its nightly batch runs, when work is due.

One validated file per OEM (`adapters/<oem>/oem.toml`) holds them; unknown keys are errors, so a
typo is reported instead of silently ignored.
"""

from __future__ import annotations

import re
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from submissions_pipeline.domain.fleet import ConcurrencyCaps, FleetPolicy
from submissions_pipeline.domain.golive import GoLiveThresholds
from submissions_pipeline.domain.reconciliation import ReconciliationPolicy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OemSchedule(_Strict):
    """When the OEM's batch runs and when its cases must be done."""

    nightly_cron: str = Field(
        "0 2 * * *", description="Cron of the nightly batch, off-hours for the portal."
    )
    timezone: str = Field("UTC", description="IANA time zone the cron and hours are read in.")
    business_hours_start: time = Field(
        time(7, 0),
        description="Local time by which every new case should be cleared ('done by morning').",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r}") from None
        return tz


_HOST_PATTERN = re.compile(r"^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")


class OemBrowser(_Strict):
    """What the worker's browser may leave out on this portal, without touching isolation."""

    block_hosts: list[str] = Field(
        default_factory=list,
        description="Third-party hosts the portal's pages call but do not need to work "
        "(analytics, tag managers, chat widgets): never resolved, so a slow one cannot hold "
        "a page up. `*.example.com` matches the subdomains. Cookies and storage are not "
        "touched: every job still has a context of its own.",
    )

    @field_validator("block_hosts")
    @classmethod
    def _hostnames(cls, hosts: list[str]) -> list[str]:
        bad = [h for h in hosts if not _HOST_PATTERN.match(h)]
        if bad:
            raise ValueError(f"not a host name or *.domain pattern: {bad}")
        return hosts


class OemSettings(_Strict):
    """Everything about one OEM that is not how to drive its portal (that is the selectors)."""

    key: str = Field(description="The OEM key: partition key, queue and CRM value.")
    display_name: str = Field(description="How people name the OEM in reports and pages.")
    schedule: OemSchedule = Field(default_factory=OemSchedule)
    reconciliation: ReconciliationPolicy = Field(
        default_factory=ReconciliationPolicy,
        description="When a lookup miss proves a submission absent (see reconciliation.py).",
    )
    golive: GoLiveThresholds = Field(
        default_factory=GoLiveThresholds,
        description="When a run has drifted from the baseline of the first five clean runs.",
    )
    concurrency: ConcurrencyCaps = Field(
        default_factory=ConcurrencyCaps,
        description="Fleet-wide session caps the portal needs, enforced by the queue's claim.",
    )
    fleet: FleetPolicy = Field(
        default_factory=FleetPolicy,
        description="Autoscaling bounds of the OEM's workers (see fleet.py).",
    )
    browser: OemBrowser = Field(
        default_factory=OemBrowser,
        description="Requests the worker's browser leaves out on this portal.",
    )
