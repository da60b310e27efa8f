"""The CRM feed check: no case waits for an OEM nobody reads.

Cases are read per registered OEM, so a case filed under an OEM key that is not registered
(no adapter yet, or a typo no near-miss rule recognises) would stay new for ever without
anyone noticing. The check warns (it never blocks the OEM's own run) and lists those OEM keys
with their case counts. Near misses of a registered key are not listed: that OEM's partition
returns them to the CRM as invalid data.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from submissions_pipeline.assets.crm_cases import crm_cases, unrouted_oems
from submissions_pipeline.assets.partitions import oem_partitions
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.resources import CrmResource


@asset_check(
    asset=crm_cases,
    partitions_def=oem_partitions,
    description="No CRM case waits for an OEM that is not registered (no run would ever read "
    "it); warns with the OEM keys and their case counts.",
)
def unknown_oems(context: AssetCheckExecutionContext, crm: CrmResource) -> AssetCheckResult:
    _near, unknown = unrouted_oems(crm.get_client(), oem_registry().oem_keys())
    waiting = sum(unknown.values())
    listed = ", ".join(f"{key!r}: {n}" for key, n in unknown.items())
    return AssetCheckResult(
        passed=not unknown,
        severity=AssetCheckSeverity.WARN,
        description=f"{waiting} cases wait for unregistered OEMs ({listed})"
        if unknown
        else "every waiting case belongs to a registered OEM",
        metadata={"unknown_oems": MetadataValue.json(unknown), "cases": waiting},
    )
