"""The outbox dispatcher: fan events out to subscribers, sign and deliver them, retry, give up.

At least once: a delivery is leased before it is sent and marked after the receiver answers
2xx, so a dispatcher killed in between leaves it due again once the lease ends. Receivers
de-duplicate by the `Submissions-Event-Id` header; the payload of an event never changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from random import Random

import requests
from pydantic import BaseModel, Field, SecretStr, TypeAdapter

from submissions_pipeline.api.payloads import body_bytes, render
from submissions_pipeline.api.signing import SIGNATURE_HEADER, signature_header
from submissions_pipeline.domain.clock import Clock, utcnow
from submissions_pipeline.failpoints import failpoint
from submissions_pipeline.links import job_pages_base
from submissions_pipeline.settings import Settings
from submissions_pipeline.store import JobStore
from submissions_pipeline.store.outbox import Delivery, OutboxEvent

EVENT_ID_HEADER = "Submissions-Event-Id"
EVENT_TYPE_HEADER = "Submissions-Event-Type"


class Subscription(BaseModel):
    """One receiver: where events go, the secret they are signed with, and which ones it wants.

    `events` are patterns (`job.*`, `run.finished`); empty `events` or `oems` means all.
    """

    name: str = Field(min_length=1, max_length=64)
    url: str
    secret: SecretStr
    events: list[str] = Field(default_factory=list)
    oems: list[str] = Field(default_factory=list)

    def wants(self, event: OutboxEvent) -> bool:
        """Whether this subscriber receives `event`."""
        if self.events and not any(fnmatchcase(event.event_type, p) for p in self.events):
            return False
        return not self.oems or event.oem is None or event.oem in self.oems


def parse_subscriptions(document: str | None) -> list[Subscription]:
    """Subscriptions from their JSON list (none for None or an empty string)."""
    if not document:
        return []
    return TypeAdapter(list[Subscription]).validate_python(json.loads(document))


def subscriptions_from_settings(settings: Settings) -> list[Subscription]:
    """The subscriptions SUBMISSIONS_WEBHOOK_SUBSCRIPTIONS declares (none when unset)."""
    value = settings.webhook_subscriptions
    return parse_subscriptions(value.get_secret_value() if value is not None else None)


def backoff_s(attempts: int, base_s: float, max_s: float, rng: Random) -> float:
    """Delay before the next try: doubling from `base_s`, capped, with full jitter over its
    upper half so that receivers coming back are not hit by every retry at once."""
    delay = min(max_s, base_s * 2 ** max(0, attempts - 1))
    return delay * (0.5 + rng.random() / 2)


class DispatchReport(BaseModel):
    """What one pass did."""

    fanned_out: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    purged: int = 0


class WebhookDispatcher:
    """Delivers the outbox. One pass is `dispatch_once`; a sensor or `submissions webhooks
    dispatch` calls it on a timer. Safe to run several at once: leases keep them apart."""

    def __init__(
        self,
        store: JobStore,
        subscriptions: Sequence[Subscription],
        *,
        evidence_base_url: str,
        max_attempts: int = 10,
        backoff_base_s: float = 30.0,
        backoff_max_s: float = 3600.0,
        retention: timedelta = timedelta(days=7),
        lease_s: float = 60.0,
        timeout_s: float = 5.0,
        clock: Clock = utcnow,
        rng: Random | None = None,
    ):
        self.store = store
        self.subscriptions = {s.name: s for s in subscriptions}
        self.evidence_base_url = evidence_base_url
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retention = retention
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.rng = rng or Random()
        self._http = requests.Session()

    @classmethod
    def from_settings(
        cls, store: JobStore, settings: Settings, **kwargs: object
    ) -> WebhookDispatcher:
        """The dispatcher the settings describe."""
        options: dict = {
            "evidence_base_url": job_pages_base(settings.console_url),
            "max_attempts": settings.webhook_max_attempts,
            "backoff_base_s": settings.webhook_backoff_s,
            "backoff_max_s": settings.webhook_backoff_max_s,
            "retention": timedelta(days=settings.webhook_retention_days),
            **kwargs,
        }
        return cls(store, subscriptions_from_settings(settings), **options)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def dispatch_once(self, now: datetime | None = None) -> DispatchReport:
        """Fan out new events, deliver what is due, purge what is old enough."""
        now = now or self.clock()
        report = DispatchReport()
        for event in self.store.events_to_fan_out():
            names = [s.name for s in self.subscriptions.values() if s.wants(event)]
            payload = render(event, self.evidence_base_url)
            report.fanned_out += self.store.fan_out(event.event_id, payload, names, now=now)
        for delivery in self.store.lease_deliveries(lease_s=self.lease_s, now=now):
            outcome = self._deliver(delivery, now)
            setattr(report, outcome, getattr(report, outcome) + 1)
        report.purged = self.store.purge_delivered_events(now - self.retention)
        return report

    def _deliver(self, delivery: Delivery, now: datetime) -> str:
        sub = self.subscriptions.get(delivery.subscription)
        if sub is None:
            error = f"subscription {delivery.subscription!r} is no longer configured"
        else:
            error = self._send(sub, delivery)
        if error is None:
            failpoint("during_webhook_delivery")
            self.store.delivery_succeeded(delivery.event_id, delivery.subscription, now=now)
            return "delivered"
        if sub is None or delivery.attempts >= self.max_attempts:
            self.store.delivery_failed(delivery.event_id, delivery.subscription, error, None)
            return "dead"
        delay = backoff_s(delivery.attempts, self.backoff_base_s, self.backoff_max_s, self.rng)
        retry_at = now + timedelta(seconds=delay)
        self.store.delivery_failed(delivery.event_id, delivery.subscription, error, retry_at)
        return "retrying"

    def _send(self, sub: Subscription, delivery: Delivery) -> str | None:
        """POST the signed payload; None on a 2xx, else what went wrong (no secret in it)."""
        body = body_bytes(delivery.payload or {})
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: delivery.event_id,
            EVENT_TYPE_HEADER: delivery.event_type,
            SIGNATURE_HEADER: signature_header(
                sub.secret.get_secret_value(), int(time.time()), body
            ),
        }
        try:
            resp = self._http.post(sub.url, data=body, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            return f"{type(exc).__name__} posting to {sub.name}"
        if 200 <= resp.status_code < 300:
            return None
        return f"{sub.name} answered HTTP {resp.status_code}"


def dispatch_until_idle(
    dispatcher: WebhookDispatcher, passes: int = 20
) -> Iterable[DispatchReport]:
    """Passes until one delivers and fans out nothing (what a command-line `dispatch` runs)."""
    for _ in range(passes):
        report = dispatcher.dispatch_once()
        yield report
        if not (report.fanned_out or report.delivered):
            return


def main() -> None:
    """One dispatcher pass from the environment's settings (the crash suite kills it)."""
    from submissions_pipeline.settings import load_settings

    settings = load_settings()
    store = JobStore.from_url(settings.database_url, migrate_schema=False)
    dispatcher = WebhookDispatcher.from_settings(store, settings)
    try:
        print(dispatcher.dispatch_once().model_dump_json())
    finally:
        dispatcher.close()
        store.dispose()


if __name__ == "__main__":
    main()
