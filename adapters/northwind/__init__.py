"""Northwind Motors (Dealer Connect): the plain template, dealer code on the login page."""

from adapters.base import TemplatedPortalAdapter


class NorthwindAdapter(TemplatedPortalAdapter):
    """Northwind's portal needs nothing beyond its selector files."""

    oem = "northwind"
