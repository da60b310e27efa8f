"""Test portals built unlike the sandbox's three: their own markup, no version meta, an iframe
form, a confirm() on submit, a single-page app that submits by fetch. They prove that an adapter
for a portal this project never shaped is selector data plus a subclass naming the OEM.

``TEST_PORTALS`` maps each OEM key to its portal class; ``TestPortalServer`` serves one on
loopback. Their adapters live in ``sandbox/testportals/adapters`` (a registry of their own).
"""

from __future__ import annotations

from pathlib import Path

from sandbox.testportals.base import TestPortal
from sandbox.testportals.harbor import HarborPortal
from sandbox.testportals.meridian import MeridianPortal
from sandbox.testportals.server import TestPortalServer

#: OEM key -> portal class.
TEST_PORTALS: dict[str, type[TestPortal]] = {"harbor": HarborPortal, "meridian": MeridianPortal}
#: The adapters folder (registry.toml and one folder per OEM) for these portals.
ADAPTERS_DIR = Path(__file__).resolve().parent / "adapters"

__all__ = ["ADAPTERS_DIR", "TEST_PORTALS", "TestPortal", "TestPortalServer"]
