"""Builders for realistic test data (not fixtures: plain functions tests call)."""

from __future__ import annotations

import base64
import html
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from submissions_pipeline.domain import Case, Job, Step, SubmissionState
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.runner import BatchConfig, EvidenceSettings

if TYPE_CHECKING:
    from submissions_pipeline.store import JobStore

S = SubmissionState

VALID_VINS = [
    "1HGCM82633A004352",
    "JH4KA7561PC008269",
    "5YJSA1E26HF000337",
    "WDBRF40J43F433423",
    "1FTFW1ET5DFC10312",
]


def case_record(n: int = 1, oem: str = "northwind", **overrides: Any) -> dict[str, Any]:
    """A raw CRM record as the CRM would hand it over."""
    record: dict[str, Any] = {
        "case_id": f"CASE-{n:05d}",
        "oem": oem,
        "dealer_id": f"D100{1 + n % 5}",
        "vin": VALID_VINS[n % len(VALID_VINS)],
        "payload": {
            "repair_date": "2026-11-02",
            "mileage": 10_000 + n,
            "complaint": "Engine light on, rough idle at cold start",
            "cause": "Faulty ignition coil cylinder 2",
            "correction": "Replaced ignition coil, cleared codes",
            "labor_hours": 1.2,
            "part_number": "IGN-4471",
        },
        "priority": 0,
    }
    record.update(overrides)
    return record


def make_case(n: int = 1, **overrides: Any) -> Case:
    return Case.model_validate(case_record(n, **overrides))


def quick_config(**overrides: Any) -> BatchConfig:
    """A batch config for tests: no video unless asked, seeded."""
    cfg: dict[str, Any] = {"seed": 11, "evidence": EvidenceSettings(video="off")}
    cfg.update(overrides)
    return BatchConfig(**cfg)


def secret_encodings(secret: str) -> set[str]:
    """Every form a secret could take in stored text, for scans: as typed, URL-encoded (either
    space, either case of hex digits), JSON-escaped (ASCII or not, once or twice), HTML-escaped,
    and base64 (the characters that do not depend on what follows, when it starts a value)."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(json.dumps(secret)[1:-1])[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
    }
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in forms}
    forms.add(base64.b64encode(secret.encode()).decode()[: len(secret.encode()) * 4 // 3])
    return {f for f in forms if f}


# The specification, written out by hand: these and only these moves are legal.
LEGAL = {
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.FAILED_TERMINAL),
    (S.QUEUED, S.DEAD_LETTERED),
    (S.RUNNING, S.SUBMITTED),
    (S.RUNNING, S.RETRY_SCHEDULED),
    (S.RUNNING, S.NEEDS_RECONCILIATION),
    (S.RUNNING, S.NEEDS_REVIEW),
    (S.RUNNING, S.FAILED_TERMINAL),
    (S.RUNNING, S.DEAD_LETTERED),
    (S.RUNNING, S.QUEUED),
    (S.SUBMITTED, S.EVIDENCE_STORED),
    (S.SUBMITTED, S.RETRY_SCHEDULED),
    (S.SUBMITTED, S.NEEDS_RECONCILIATION),
    (S.SUBMITTED, S.NEEDS_REVIEW),
    (S.SUBMITTED, S.DEAD_LETTERED),
    (S.EVIDENCE_STORED, S.CRM_UPDATED),
    (S.EVIDENCE_STORED, S.RETRY_SCHEDULED),
    (S.EVIDENCE_STORED, S.DEAD_LETTERED),
    (S.EVIDENCE_STORED, S.NEEDS_RECONCILIATION),
    (S.RETRY_SCHEDULED, S.RUNNING),
    (S.RETRY_SCHEDULED, S.DEAD_LETTERED),
    (S.RETRY_SCHEDULED, S.FAILED_TERMINAL),
    (S.NEEDS_RECONCILIATION, S.RUNNING),
    (S.NEEDS_RECONCILIATION, S.DEAD_LETTERED),
    (S.NEEDS_RECONCILIATION, S.NEEDS_REVIEW),
    (S.NEEDS_REVIEW, S.QUEUED),
    (S.NEEDS_REVIEW, S.CRM_UPDATED),
    (S.NEEDS_REVIEW, S.FAILED_TERMINAL),
    (S.DEAD_LETTERED, S.QUEUED),
    (S.DEAD_LETTERED, S.CRM_UPDATED),  # a person submitted it by hand
}

# How to bring a fresh job into each state with the store's public operations.
PATHS = {
    S.QUEUED: [],
    S.RUNNING: [S.RUNNING],
    S.SUBMITTED: [S.RUNNING, S.SUBMITTED],
    S.EVIDENCE_STORED: [S.RUNNING, S.SUBMITTED, S.EVIDENCE_STORED],
    S.CRM_UPDATED: [S.RUNNING, S.SUBMITTED, S.EVIDENCE_STORED, S.CRM_UPDATED],
    S.RETRY_SCHEDULED: [S.RUNNING, S.RETRY_SCHEDULED],
    S.NEEDS_RECONCILIATION: [S.RUNNING, S.NEEDS_RECONCILIATION],
    S.NEEDS_REVIEW: [S.RUNNING, S.NEEDS_REVIEW],
    S.FAILED_TERMINAL: [S.RUNNING, S.FAILED_TERMINAL],
    S.DEAD_LETTERED: [S.RUNNING, S.DEAD_LETTERED],
}

_counter = iter(range(1, 10_000))


def job_in(store: JobStore, state: SubmissionState) -> str:
    """A fresh job (its own case and OEM, so claims never pick another) brought into `state`."""
    n = next(_counter)
    job_id = store.enqueue(make_case(n, oem=f"oem{n}")).job_id
    for step in PATHS[state]:
        if step is S.RUNNING:
            claimed = store.claim("w1", oem=f"oem{n}", limit=1)
            assert [j.job_id for j in claimed] == [job_id]
        else:
            store.transition(job_id, step, actor="test")
    assert store.get(job_id).state is state
    return job_id


def jobs_in_the_browser(store: JobStore, oem: str | None = None) -> list[Job]:
    """The leased jobs past their claim: on the portal, where a kill or a stop lands mid-job."""
    leased = store.list_jobs(oem=oem, states=LEASED_STATES)
    return [j for j in leased if j.last_step not in (None, Step.CLAIMED.value)]


def running_job(tries: int = 1, lookup_claims: int = 0, submit_attempted: bool = False) -> Job:
    """A job in a worker's hands with its budget counters as given (routing tests)."""
    case = make_case(1)
    at = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    return Job(
        job_id="j1",
        idempotency_key=case.idempotency_key(),
        state=S.RUNNING,
        attempt=tries + lookup_claims,
        tries=tries,
        lookup_claims=lookup_claims,
        submit_attempted=submit_attempted,
        created_at=at,
        updated_at=at,
        **case.model_dump(),
    )
