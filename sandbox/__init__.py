"""Sandbox OEM portals: fake but realistic dealer sites for adapters, tests, demo, soak, benchmark.

Nothing in production imports this package. ``PORTALS`` maps each OEM key to its portal class
(construct it with fault knobs; its ``.app`` is the Starlette ASGI app); ``SandboxServer`` serves
all of them on loopback. See sandbox/README.md for the flows, labels, references and knobs.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from sandbox.aurora import AuroraPortal
from sandbox.faults import KNOBS, FaultConfig
from sandbox.kestrel import KestrelPortal
from sandbox.ledger import DuplicateCase, LedgerEntry
from sandbox.northwind import NorthwindPortal
from sandbox.portal import Portal
from sandbox.references import REFERENCE_PATTERNS

#: OEM key → portal class (the app factory). Keys are the pipeline's OEM keys.
PORTALS: dict[str, type[Portal]] = {
    "northwind": NorthwindPortal,
    "aurora": AuroraPortal,
    "kestrel": KestrelPortal,
}


def create_portal(oem: str, config: FaultConfig | None = None, **knobs: Any) -> Portal:
    """A fresh portal (state + app) for ``oem`` with the given knobs as its reset defaults."""
    return PORTALS[oem](config, **knobs)


def create_app(oem: str, **knobs: Any) -> Starlette:
    """Just the ASGI app of a fresh portal, e.g. for ``uvicorn --factory``-style serving."""
    return create_portal(oem, **knobs).app


# Imported last: the server looks portals up in PORTALS above.
from sandbox.server import SandboxServer  # noqa: E402

__all__ = [
    "KNOBS",
    "PORTALS",
    "REFERENCE_PATTERNS",
    "DuplicateCase",
    "FaultConfig",
    "LedgerEntry",
    "Portal",
    "SandboxServer",
    "create_app",
    "create_portal",
]
