"""The webhook outbox's SQL: notifications from checks, fan-out to subscribers, leased deliveries.

Job notifications are written by the job's own change (see `statements.NOTIFYING_STATES`);
everything else here is the dispatcher's bookkeeping. Each delivery is leased before it is sent
(its `next_attempt_at` moves past the lease), so a dispatcher killed mid-delivery leaves a row
that comes due again, and the receiver sees the same event id and payload a second time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, and_, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from submissions_pipeline.domain.clock import Clock
from submissions_pipeline.store.models import _aware
from submissions_pipeline.store.reconnect import reconnecting
from submissions_pipeline.store.schema import webhook_deliveries, webhook_events

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


class OutboxEvent(BaseModel):
    """One notification as the outbox holds it (the payload once it has been fanned out)."""

    event_id: str
    event_type: str
    oem: str | None = None
    job_id: str | None = None
    case_id: str | None = None
    state: str | None = None
    reason_code: str | None = None
    reference: str | None = None
    failure: dict[str, Any] | None = None
    attempt: int | None = None
    data: dict[str, Any] | None = None
    occurred_at: datetime
    payload: dict[str, Any] | None = None
    fanned_out_at: datetime | None = None


class Delivery(BaseModel):
    """One event to one subscriber, as the dispatcher leases it or an operator lists it."""

    event_id: str
    subscription: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = None
    delivered_at: datetime | None = None
    event_type: str = ""
    payload: dict[str, Any] | None = None


def _event(row: Any) -> OutboxEvent:
    m = dict(row._mapping)
    m["occurred_at"] = _aware(m["occurred_at"])
    m["fanned_out_at"] = _aware(m["fanned_out_at"])
    return OutboxEvent.model_validate(m)


def _delivery(row: Any) -> Delivery:
    m = dict(row._mapping)
    m["next_attempt_at"] = _aware(m["next_attempt_at"])
    m["delivered_at"] = _aware(m["delivered_at"])
    return Delivery.model_validate(m)


_DELIVERY_WITH_EVENT = select(
    *webhook_deliveries.c, webhook_events.c.event_type, webhook_events.c.payload
).join(webhook_events, webhook_events.c.event_id == webhook_deliveries.c.event_id)


class WebhookOutbox:
    """The outbox half of `JobStore`: one short transaction per call, re-run on a drop."""

    engine: Engine
    clock: Clock

    @reconnecting
    def record_notification(
        self,
        event_type: str,
        idempotency_key: str,
        *,
        oem: str | None = None,
        data: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Write a check's or sensor's notification once per key; False when it already exists.

        The key names the occurrence (the OEM and the night, the oldest waiting job, the lost
        run), so a check evaluated again finds its event in place and emits nothing.
        """
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(webhook_events).values(
                        event_id=f"{event_type}:{idempotency_key}"[:160],
                        event_type=event_type,
                        oem=oem,
                        data=data or {},
                        occurred_at=now or self.clock(),
                    )
                )
        except IntegrityError:
            return False
        return True

    @reconnecting
    def events_to_fan_out(self, limit: int = 200) -> list[OutboxEvent]:
        """Events no subscriber has been given yet, oldest first."""
        stmt = (
            select(webhook_events)
            .where(webhook_events.c.fanned_out_at.is_(None))
            .order_by(webhook_events.c.occurred_at, webhook_events.c.event_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_event(r) for r in conn.execute(stmt)]

    @reconnecting
    def fan_out(
        self,
        event_id: str,
        payload: dict[str, Any],
        subscriptions: Iterable[str],
        now: datetime | None = None,
    ) -> bool:
        """Freeze an event's payload and give each subscriber a pending delivery, once.

        False when another dispatcher fanned it out first (its payload stands).
        """
        now = now or self.clock()
        with self.engine.begin() as conn:
            res = conn.execute(
                update(webhook_events)
                .where(
                    webhook_events.c.event_id == event_id,
                    webhook_events.c.fanned_out_at.is_(None),
                )
                .values(payload=payload, fanned_out_at=now)
            )
            if res.rowcount != 1:
                return False
            rows = [
                {
                    "event_id": event_id,
                    "subscription": name,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                }
                for name in subscriptions
            ]
            if rows:
                conn.execute(insert(webhook_deliveries), rows)
        return True

    @reconnecting
    def lease_deliveries(
        self, *, limit: int = 50, lease_s: float = 60.0, now: datetime | None = None
    ) -> list[Delivery]:
        """Lease due deliveries to this dispatcher: each counts an attempt and is due again
        after `lease_s` unless it is marked delivered or failed before then."""
        now = now or self.clock()
        d = webhook_deliveries.c
        pick = (
            select(d.event_id, d.subscription)
            .where(d.status == PENDING, d.next_attempt_at <= now)
            .order_by(d.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        leased: list[Delivery] = []
        with self.engine.begin() as conn:
            for event_id, subscription in conn.execute(pick).all():
                key = and_(d.event_id == event_id, d.subscription == subscription)
                conn.execute(
                    update(webhook_deliveries)
                    .where(key)
                    .values(
                        attempts=d.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_s)
                    )
                )
                row = conn.execute(_DELIVERY_WITH_EVENT.where(key)).first()
                leased.append(_delivery(row))
        return leased

    @reconnecting
    def delivery_succeeded(
        self, event_id: str, subscription: str, now: datetime | None = None
    ) -> None:
        """Mark a delivery done: the receiver acknowledged it."""
        d = webhook_deliveries.c
        with self.engine.begin() as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(d.event_id == event_id, d.subscription == subscription)
                .values(status=DELIVERED, delivered_at=now or self.clock(), last_error=None)
            )

    @reconnecting
    def delivery_failed(
        self, event_id: str, subscription: str, error: str, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt: due again at `retry_at`, or dead when it is None."""
        d = webhook_deliveries.c
        values: dict[str, Any] = {"last_error": error[:300]}
        if retry_at is None:
            values["status"] = DEAD
        else:
            values["next_attempt_at"] = retry_at
        with self.engine.begin() as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(d.event_id == event_id, d.subscription == subscription, d.status == PENDING)
                .values(**values)
            )

    @reconnecting
    def replay_event(
        self, event_id: str, subscriptions: Iterable[str] | None = None, now: datetime | None = None
    ) -> int:
        """Deliver an event again (to every subscriber it had, or those named), with a fresh
        budget and the same payload; the number of deliveries made due."""
        d = webhook_deliveries.c
        cond = [d.event_id == event_id]
        if subscriptions is not None:
            cond.append(d.subscription.in_(list(subscriptions)))
        with self.engine.begin() as conn:
            res = conn.execute(
                update(webhook_deliveries)
                .where(*cond)
                .values(
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now or self.clock(),
                    last_error=None,
                    delivered_at=None,
                )
            )
            return int(res.rowcount)

    @reconnecting
    def list_webhook_events(
        self, *, limit: int = 50, event_type: str | None = None
    ) -> list[OutboxEvent]:
        """The newest events first."""
        stmt = select(webhook_events).order_by(webhook_events.c.occurred_at.desc()).limit(limit)
        if event_type:
            stmt = stmt.where(webhook_events.c.event_type == event_type)
        with self.engine.connect() as conn:
            return [_event(r) for r in conn.execute(stmt)]

    @reconnecting
    def get_webhook_event(self, event_id: str) -> OutboxEvent | None:
        """One event by id, or None."""
        stmt = select(webhook_events).where(webhook_events.c.event_id == event_id)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _event(row) if row is not None else None

    @reconnecting
    def list_deliveries(self, event_id: str | None = None) -> list[Delivery]:
        """Deliveries (of one event, or all), oldest due first."""
        stmt = _DELIVERY_WITH_EVENT.order_by(webhook_deliveries.c.next_attempt_at)
        if event_id is not None:
            stmt = stmt.where(webhook_deliveries.c.event_id == event_id)
        with self.engine.connect() as conn:
            return [_delivery(r) for r in conn.execute(stmt)]

    @reconnecting
    def purge_delivered_events(self, before: datetime) -> int:
        """Delete events fanned out before `before` whose every delivery succeeded (dead or
        pending ones stay, for a replay); the number of events deleted."""
        d, e = webhook_deliveries.c, webhook_events.c
        unfinished = exists().where(d.event_id == e.event_id, d.status != DELIVERED)
        old = and_(e.fanned_out_at.is_not(None), e.fanned_out_at < before, ~unfinished)
        with self.engine.begin() as conn:
            ids = [r for (r,) in conn.execute(select(e.event_id).where(old))]
            if not ids:
                return 0
            conn.execute(delete(webhook_deliveries).where(d.event_id.in_(ids)))
            conn.execute(delete(webhook_events).where(e.event_id.in_(ids)))
        return len(ids)
