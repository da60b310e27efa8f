"""The go-live watch's state per OEM: read and replaced whole, one row per OEM."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from submissions_pipeline.store.reconnect import reconnecting
from submissions_pipeline.store.schema import golive_baselines


class GoLiveStates:
    """Mixin of `JobStore`: the go-live watch's JSON per OEM."""

    engine: Engine
    clock: Callable[[], datetime]

    @reconnecting
    def golive_state(self, oem: str) -> dict[str, Any] | None:
        """The OEM's go-live state as last saved (None: nothing recorded yet)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(golive_baselines.c.state).where(golive_baselines.c.oem == oem)
            ).first()
        return None if row is None else dict(row.state)

    @reconnecting
    def save_golive_state(self, oem: str, state: dict[str, Any]) -> None:
        """Replace the OEM's go-live state (one OEM's runs never overlap, so last write wins)."""
        values = {"state": state, "updated_at": self.clock()}
        change = update(golive_baselines).where(golive_baselines.c.oem == oem).values(values)
        with self.engine.begin() as conn:
            if conn.execute(change).rowcount:
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(golive_baselines).values(oem=oem, **values))
        except IntegrityError:  # saved meanwhile by another process: replace it
            with self.engine.begin() as conn:
                conn.execute(change)
