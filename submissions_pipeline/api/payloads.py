"""Webhook payloads (schema `contracts/webhooks-v1/`): what an outbox event says to a receiver.

Rendered once, when the event is fanned out, and stored: every delivery of an event carries the
same bytes. Links are durable (the evidence viewer by job id), never a presigned link that
expires; nothing here carries a secret (failure messages were redacted where they were made).
"""

from __future__ import annotations

import json
from typing import Any

from submissions_pipeline.store.outbox import OutboxEvent

SCHEMA = "submissions.webhooks/v1"

#: Every event type, with what it means (the catalogue in the README says the same).
EVENT_TYPES = {
    "job.submitted": "The portal confirmed the submission; carries the reference.",
    "job.needs_review": "The portal may hold the claim and its absence cannot be proven.",
    "job.failed_terminal": "Invalid data or a business refusal: a person must fix the case.",
    "job.dead_lettered": "Retries exhausted or an adapter bug: ops must look.",
    "run.finished": "A night's run of an OEM finished; carries its summary.",
    "run.worker_lost": "A run died (or a worker's lease expired) with jobs in hand.",
    "queue.age_exceeded": "Due work has waited longer than twice the schedule interval.",
    "queue.done_by_morning_missed": "Cases were still open at the OEM's done-by time.",
    "error_budget.breached": "Failed attempts passed the error budget.",
}

#: Failure fields a payload carries; links inside the failure may expire, so they stay out.
_FAILURE_FIELDS = (
    "reason_code",
    "error_class",
    "last_step",
    "message",
    "attempt",
    "field_errors",
    "occurred_at",
)


def evidence_url(base: str, job_id: str) -> str:
    """The durable link to a job's evidence."""
    return f"{base.rstrip('/')}/{job_id}"


def render(event: OutboxEvent, evidence_base_url: str) -> dict[str, Any]:
    """The payload of an event, as JSON-ready data."""
    data: dict[str, Any]
    if event.job_id is not None:
        data = {
            "job_id": event.job_id,
            "case_id": event.case_id,
            "state": event.state,
            "attempt": event.attempt,
            "reference": event.reference,
            "reason_code": event.reason_code,
            "evidence_url": evidence_url(evidence_base_url, event.job_id),
        }
        if event.failure:
            data["failure"] = {k: event.failure.get(k) for k in _FAILURE_FIELDS}
    else:
        data = dict(event.data or {})
    return {
        "schema": SCHEMA,
        "id": event.event_id,
        "type": event.event_type,
        "occurred_at": event.occurred_at.isoformat(),
        "oem": event.oem,
        "data": data,
    }


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): canonical JSON, so a redelivery is byte-identical."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
