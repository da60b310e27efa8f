"""The job store's own errors: what a caller of the store may have to handle."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the job store's own errors."""


class JobNotFound(StoreError):
    """No job with that id."""


class LeaseLost(StoreError):
    """The caller no longer holds the job's lease (it expired and was reaped or re-claimed)."""


class StaleState(StoreError):
    """The job was not in the state the caller expected: someone else moved it first."""
