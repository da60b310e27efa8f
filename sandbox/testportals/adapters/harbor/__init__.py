"""Harbor Trucks' dealer hub: an iframe form with a confirm(), the reference in a link."""

from adapters.base import TemplatedPortalAdapter


class HarborAdapter(TemplatedPortalAdapter):
    """Everything Harbor needs is in its selector file."""

    oem = "harbor"
