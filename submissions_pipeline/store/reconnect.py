"""Re-running a database operation when its connection drops: the `reconnecting` decorator.

Not tied to the job store: any client that does its work as one transaction per call on a
SQLAlchemy engine (the job store, the embedded CRM) can wrap its methods with it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

#: Pauses before re-running a transaction whose database connection dropped.
RECONNECT_BACKOFF_S = (0.1, 0.5, 1.0, 2.0)

P = ParamSpec("P")
R = TypeVar("R")


def is_disconnect(exc: BaseException) -> bool:
    """Whether a database error means the connection is gone (rather than a refused statement)."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def reconnecting(method: Callable[P, R]) -> Callable[P, R]:
    """Re-run a database operation when the connection drops under it.

    Only for operations that are one transaction each, rolled back when the connection dies, and
    that are safe to run again when a commit's acknowledgement was lost (compare-and-set writes
    that refuse to apply twice, idempotent inserts). Other errors, and a disconnect after the
    last pause, reach the caller.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for pause in (*RECONNECT_BACKOFF_S, None):
            try:
                return method(*args, **kwargs)
            except DBAPIError as exc:
                if pause is None or not is_disconnect(exc):
                    raise
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper
