"""Adapters of the test portals: selector data and a subclass naming the OEM, nothing more."""
