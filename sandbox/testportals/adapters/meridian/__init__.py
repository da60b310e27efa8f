"""Meridian Motors' service cloud: a single-page app that submits by fetch."""

from adapters.base import TemplatedPortalAdapter


class MeridianAdapter(TemplatedPortalAdapter):
    """Everything Meridian needs is in its selector file."""

    oem = "meridian"
