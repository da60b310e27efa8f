"""Outbound webhooks end to end: a receiver on loopback that verifies signatures and
de-duplicates by event id processes every event of a faulty night exactly once, through its
own downtime and through a dispatcher killed mid-delivery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from random import Random
from typing import Any

from submissions_pipeline.api.dispatcher import (
    Subscription,
    WebhookDispatcher,
)
from submissions_pipeline.domain import FailureObject, ReasonCode, SubmissionState
from submissions_pipeline.settings import PROJECT_ROOT
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import make_case
from submissions_pipeline_tests.servers import AppServer, _free_port
from submissions_pipeline_tests.webhook_receiver import Receiver

S = SubmissionState
SECRET = "wh00k"  # short on purpose: it must never show up in a payload


def faulty_night(store: JobStore) -> set[str]:
    """A night with every kind of outcome; the ids of the events it must produce."""
    outcomes = {
        "submitted": S.SUBMITTED,
        "review": S.NEEDS_REVIEW,
        "invalid": S.FAILED_TERMINAL,
        "dead": S.DEAD_LETTERED,
        "retry": S.RETRY_SCHEDULED,  # notifies nothing
    }
    for n, (oem, to) in enumerate(outcomes.items(), start=1):
        job_id = store.enqueue(make_case(n, oem=oem)).job_id
        store.claim("w1", oem=oem)
        if to is S.FAILED_TERMINAL:
            failure = FailureObject.of(ReasonCode.PORTAL_VALIDATION, "mileage refused")
            store.record_failure(job_id, failure, actor="w1", lease_owner="w1")
        elif to is S.SUBMITTED:
            store.transition(job_id, to, actor="w1", lease_owner="w1", reference=f"R-{n}")
        else:
            store.transition(job_id, to, actor="w1", lease_owner="w1")
    for _ in range(2):  # the check is evaluated twice: one event
        store.record_notification("queue.age_exceeded", "submitted:2026-11-26", oem="submitted")
    return {e.event_id for e in store.list_webhook_events(limit=100)}


def dispatcher(store: JobStore, url: str, clock, **kwargs: Any) -> WebhookDispatcher:
    sub = Subscription(name="ops", url=url, secret=SECRET)
    options: dict[str, Any] = {
        "evidence_base_url": "https://console.example/evidence",
        "backoff_base_s": 10.0,
        "backoff_max_s": 60.0,
        "clock": clock,
        "rng": Random(7),
        **kwargs,
    }
    return WebhookDispatcher(store, [sub], **options)


def test_every_event_of_a_faulty_night_is_processed_once_across_receiver_downtime(store, clock):
    expected = faulty_night(store)
    assert len(expected) == 5  # four job outcomes and one check
    receiver = Receiver(SECRET)
    server = AppServer(receiver.app(), port=_free_port())
    d = dispatcher(store, server.url + "/hook", clock)
    try:
        first = d.dispatch_once()  # the receiver is down
        assert (first.fanned_out, first.delivered, first.retrying) == (5, 0, 5)
        for _ in range(6):  # a minute of retries with backoff while it stays down
            clock.advance(10)
            d.dispatch_once()
        assert all(x.status == "pending" for x in store.list_deliveries())
        server.start()
        for _ in range(12):
            clock.advance(15)
            d.dispatch_once()
    finally:
        d.close()
        server.stop()
    assert set(receiver.processed) == expected
    assert len(receiver.received) == len(expected)  # nothing delivered twice
    assert all(x.status == "delivered" for x in store.list_deliveries())
    by_type = {p["type"]: p for p in receiver.processed.values()}
    failed = by_type["job.failed_terminal"]["data"]
    assert failed["failure"]["reason_code"] == "portal_validation"
    assert failed["evidence_url"].startswith("https://console.example/evidence/")
    assert by_type["job.submitted"]["data"]["reference"] == "R-1"
    assert all(SECRET not in json.dumps(p) for p in receiver.processed.values())


def test_a_dispatcher_killed_mid_delivery_redelivers_the_same_event(store, clock, db_url, tmp_path):
    expected = faulty_night(store)
    receiver = Receiver(SECRET)
    with AppServer(receiver.app()) as server:
        sub = {"name": "ops", "url": server.url + "/hook", "secret": SECRET}
        env = {
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "SUBMISSIONS_HOME": str(tmp_path),
            "SUBMISSIONS_DB_URL": db_url,
            "SUBMISSIONS_WEBHOOK_SUBSCRIPTIONS": json.dumps([sub]),
            "SUBMISSIONS_FAILPOINTS": "during_webhook_delivery",
        }
        killed = subprocess.run(
            [sys.executable, "-m", "submissions_pipeline.api.dispatcher"],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert killed.returncode == -9, killed.stderr.decode()[-2000:]
        assert len(receiver.received) == 1  # acknowledged, never marked delivered
        (first_id, first_body) = receiver.received[0]

        clock.now = max(d.next_attempt_at for d in store.list_deliveries())
        clock.advance(1)  # the dead dispatcher's lease is over
        d = dispatcher(store, server.url + "/hook", clock)
        try:
            report = d.dispatch_once()
        finally:
            d.close()
    assert report.delivered == len(expected)
    assert set(receiver.processed) == expected
    again = [body for event_id, body in receiver.received if event_id == first_id]
    assert again == [first_body, first_body]  # same id, same payload: de-duplicated


def test_an_event_no_receiver_accepts_goes_dead_after_its_budget_and_can_be_replayed(store, clock):
    store.record_notification("error_budget.breached", "aurora:2026-11-26", oem="aurora")
    receiver = Receiver(SECRET, fail_with=503)
    with AppServer(receiver.app()) as server:
        d = dispatcher(store, server.url + "/hook", clock, max_attempts=3)
        try:
            outcomes = []
            for _ in range(4):
                r = d.dispatch_once()
                outcomes.append((r.retrying, r.dead))
                clock.advance(120)
            (delivery,) = store.list_deliveries()
            assert outcomes == [(1, 0), (1, 0), (0, 1), (0, 0)]
            assert (delivery.status, delivery.attempts) == ("dead", 3)
            assert "503" in (delivery.last_error or "")

            receiver.fail_with = None
            assert store.replay_event(delivery.event_id) == 1
            assert d.dispatch_once().delivered == 1
        finally:
            d.close()
    assert list(receiver.processed) == ["error_budget.breached:aurora:2026-11-26"]


def test_a_subscriber_gets_only_the_event_types_and_oems_it_asked_for(store, clock):
    faulty_night(store)
    receiver = Receiver(SECRET)
    with AppServer(receiver.app()) as server:
        sub = Subscription(
            name="failures",
            url=server.url + "/hook",
            secret=SECRET,
            events=["job.failed_*", "job.dead_*"],
            oems=["invalid"],
        )
        d = WebhookDispatcher(store, [sub], evidence_base_url="https://c/e", clock=clock)
        try:
            d.dispatch_once()
        finally:
            d.close()
    assert [p["type"] for p in receiver.processed.values()] == ["job.failed_terminal"]


def test_delivered_events_are_purged_after_the_retention(store, clock):
    from datetime import timedelta

    store.record_notification("run.finished", "run-1", oem="aurora")
    receiver = Receiver(SECRET)
    with AppServer(receiver.app()) as server:
        d = dispatcher(store, server.url + "/hook", clock, retention=timedelta(days=1))
        try:
            assert d.dispatch_once().delivered == 1
            clock.advance(23 * 3600)
            assert d.dispatch_once().purged == 0
            clock.advance(2 * 3600)
            assert d.dispatch_once().purged == 1
        finally:
            d.close()
    assert store.list_webhook_events() == []
