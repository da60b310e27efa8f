"""The clock every component takes as a parameter, and the system clock that is its default."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: Anything that tells the time: the system clock in production, a hand-moved clock in tests,
#: so leases, retries and queue age can be checked exactly.
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The system clock, in UTC."""
    return datetime.now(UTC)
