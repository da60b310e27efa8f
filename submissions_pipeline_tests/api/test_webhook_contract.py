"""The published payload schema (contracts/webhooks-v1) is what the dispatcher sends."""

from __future__ import annotations

import json
from random import Random

from jsonschema import Draft202012Validator

from submissions_pipeline.api.dispatcher import Subscription, WebhookDispatcher
from submissions_pipeline.api.payloads import EVENT_TYPES
from submissions_pipeline.domain import FailureObject, ReasonCode, SubmissionState
from submissions_pipeline.settings import PROJECT_ROOT
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import make_case
from submissions_pipeline_tests.servers import AppServer
from submissions_pipeline_tests.webhook_receiver import Receiver

S = SubmissionState
SCHEMA = json.loads((PROJECT_ROOT / "contracts/webhooks-v1/event.schema.json").read_text())


def test_the_schema_lists_every_event_type():
    assert set(SCHEMA["properties"]["type"]["enum"]) == set(EVENT_TYPES)


def test_the_readme_catalogue_lists_every_event_type():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert [t for t in EVENT_TYPES if f"| `{t}` |" not in readme] == []


def test_every_payload_sent_matches_the_published_schema(store: JobStore, clock):
    for n, oem in enumerate(["aa", "bb", "cc", "dd"], start=1):
        job_id = store.enqueue(make_case(n, oem=oem)).job_id
        store.claim("w1", oem=oem)
        if oem == "aa":
            store.transition(job_id, S.SUBMITTED, actor="w1", lease_owner="w1", reference="R1")
        elif oem == "bb":
            failure = FailureObject.of(ReasonCode.PORTAL_VALIDATION, "mileage", last_step="fill")
            store.record_failure(job_id, failure, actor="w1", lease_owner="w1")
        elif oem == "cc":
            store.transition(job_id, S.NEEDS_REVIEW, actor="w1", lease_owner="w1")
        else:
            store.dead_letter(job_id, FailureObject.of(ReasonCode.ADAPTER_ERROR, "x"), actor="ops")
    store.record_notification(
        "run.finished", "r1", oem="a", data={"run_id": "r1", "jobs": 1, "by_state": {}}
    )
    store.record_notification("run.worker_lost", "r2", oem="a", data={"run_id": "r2", "jobs": []})
    store.record_notification("queue.age_exceeded", "a:2026-11-26", oem="a", data={})
    receiver = Receiver("s3cr")
    with AppServer(receiver.app()) as server:
        sub = Subscription(name="all", url=server.url + "/hook", secret="s3cr")
        d = WebhookDispatcher(
            store, [sub], evidence_base_url="https://console/e", clock=clock, rng=Random(1)
        )
        try:
            assert d.dispatch_once().delivered == 7
        finally:
            d.close()
    validator = Draft202012Validator(SCHEMA)
    for payload in receiver.processed.values():
        errors = [e.message for e in validator.iter_errors(payload)]
        assert errors == [], (payload["type"], errors)
    assert len({p["type"] for p in receiver.processed.values()}) == 7


def test_done_by_morning_missed_is_written_once_per_oem_and_day(store: JobStore, clock):
    from datetime import time

    from submissions_pipeline.api.sensors import notify_done_by_morning_missed
    from submissions_pipeline.domain.oem import OemSchedule

    schedule = OemSchedule(timezone="UTC", business_hours_start=time(7, 0))
    store.enqueue(make_case(1, oem="late"))  # created 02:00
    assert not notify_done_by_morning_missed(store, "late", schedule)  # before 07:00
    clock.advance(5.5 * 3600)  # 07:30, still queued
    assert notify_done_by_morning_missed(store, "late", schedule)
    clock.advance(600)
    assert not notify_done_by_morning_missed(store, "late", schedule)  # evaluated again
    (event,) = store.list_webhook_events()
    assert event.event_id == "queue.done_by_morning_missed:late:2026-11-26"
    assert event.data["open_jobs"] == 1
