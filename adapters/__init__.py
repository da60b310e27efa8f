"""OEM adapters: one package per OEM, each a selector/regex file per UI version plus overrides.

The registry below is the list of OEMs the pipeline knows (Dagster's partitions come from it).
"""

from __future__ import annotations

from importlib import import_module

from submissions_pipeline.runner.adapter import PortalAdapter

#: OEM key -> "module:Class" of its adapter. Adding an OEM starts with one line here.
REGISTRY: dict[str, str] = {
    "northwind": "adapters.northwind:NorthwindAdapter",
    "aurora": "adapters.aurora:AuroraAdapter",
    "kestrel": "adapters.kestrel:KestrelAdapter",
}


def oem_keys() -> list[str]:
    """Every OEM with an adapter, sorted (stable partition keys)."""
    return sorted(REGISTRY)


def load_adapter(oem: str) -> PortalAdapter:
    """A fresh adapter for one OEM."""
    module, _, cls = REGISTRY[oem].partition(":")
    return getattr(import_module(module), cls)()


def load_adapters() -> dict[str, PortalAdapter]:
    """One adapter per registered OEM."""
    return {oem: load_adapter(oem) for oem in oem_keys()}
