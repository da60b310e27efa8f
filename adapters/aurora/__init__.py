"""Aurora Automotive (ServiceHub): a second login page asking for a TOTP code."""

from adapters.base import TemplatedPortalAdapter


class AuroraAdapter(TemplatedPortalAdapter):
    """Aurora's TOTP page is declared in its selector files (`totp`); the template handles it."""

    oem = "aurora"
