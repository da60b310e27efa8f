"""OEM adapters: a folder of plug-ins, one package per OEM (its settings, selector files and a
small subclass of `adapters.base`), listed in `registry.toml`.

The core reads the registry through `submissions_pipeline.oems`; these shortcuts are for tests,
the benchmark and people at a Python prompt.
"""

from __future__ import annotations

from pathlib import Path

from submissions_pipeline.oems import OemRegistry, oem_registry
from submissions_pipeline.runner.adapter import PortalAdapter

FOLDER = Path(__file__).resolve().parent


def registry() -> OemRegistry:
    """The registry of this folder."""
    return oem_registry(FOLDER)


def oem_keys() -> list[str]:
    """Every OEM registered here, sorted."""
    return registry().oem_keys()


def sandbox_oem_keys() -> list[str]:
    """The OEMs a sandbox portal backs."""
    return registry().sandbox_oem_keys()


def load_adapter(oem: str) -> PortalAdapter:
    """A fresh adapter for one OEM."""
    return registry().load_adapter(oem)


def load_adapters() -> dict[str, PortalAdapter]:
    """One adapter per registered OEM."""
    return registry().load_adapters()
