"""The console's sign-in lockouts: failed sign-ins counted per account name in the database."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from submissions_pipeline.store.models import _aware
from submissions_pipeline.store.reconnect import reconnecting
from submissions_pipeline.store.schema import console_lockouts

T = console_lockouts


def _key(name: str) -> str:
    """The row's key: the name as typed, or its digest when it is longer than the column (the
    sign-in form takes whatever is posted, and one long guess must not become a server error)."""
    if len(name) <= T.c.name.type.length:
        return name
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class SignInLockouts:
    """Mixin of `JobStore`: failed sign-ins in a row, and the lock they lead to."""

    engine: Engine
    clock: Callable[[], datetime]

    @reconnecting
    def sign_in_locked_until(self, name: str) -> datetime | None:
        """Until when `name` is locked (None: not locked now)."""
        name = _key(name)
        with self.engine.connect() as conn:
            until = conn.execute(select(T.c.locked_until).where(T.c.name == name)).scalar()
        until = _aware(until)
        return until if until is not None and until > self.clock() else None

    @reconnecting
    def sign_in_failed(self, name: str, *, lock_after: int, lock_for: timedelta) -> bool:
        """Count a failed sign-in; the `lock_after`-th in a row locks the name for `lock_for`
        and starts the count again. True when this failure locked it."""
        name = _key(name)
        with self.engine.begin() as conn:
            counted = conn.execute(
                update(T).where(T.c.name == name).values(failures=T.c.failures + 1)
            ).rowcount
            if not counted:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(T).values(name=name, failures=1, locked_until=None))
                except IntegrityError:  # another console process counted it first
                    conn.execute(
                        update(T).where(T.c.name == name).values(failures=T.c.failures + 1)
                    )
            failures = conn.execute(select(T.c.failures).where(T.c.name == name)).scalar_one()
            if failures < lock_after:
                return False
            until = self.clock() + lock_for
            conn.execute(update(T).where(T.c.name == name).values(failures=0, locked_until=until))
            return True

    @reconnecting
    def sign_in_succeeded(self, name: str) -> None:
        """A good sign-in clears the count."""
        name = _key(name)
        with self.engine.begin() as conn:
            conn.execute(delete(T).where(T.c.name == name))
