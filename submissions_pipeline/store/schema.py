"""Table definitions of the job store (the migrations in migrations/ create them)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("case_id", String(64), nullable=False, index=True),
    Column("oem", String(32), nullable=False),
    Column("dealer_id", String(32), nullable=False),
    Column("vin", String(17), nullable=False),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("payload", JSON, nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("redaction_sensitive", Boolean, nullable=False, default=False),
    Column("test_record", Boolean, nullable=False, default=False),
    # When the case is due (UTC); NULL: no due date, claimed after every dated job.
    Column("due_at", DateTime(timezone=True), nullable=True),
    Column("state", String(32), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False, default=3),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("last_step", String(32), nullable=True),
    Column("submit_attempted", Boolean, nullable=False, default=False),
    # Claims that could submit (the retry budget) and claims that only looked a case up.
    Column("tries", Integer, nullable=False, default=0),
    Column("lookup_claims", Integer, nullable=False, default=0),
    Column("submit_clicks", Integer, nullable=False, default=0),
    Column("last_submit_at", DateTime(timezone=True), nullable=True),
    # Negative lookups since the last submit click: what proves a submission absent.
    Column("lookup_misses", Integer, nullable=False, default=0),
    Column("first_miss_at", DateTime(timezone=True), nullable=True),
    Column("last_miss_at", DateTime(timezone=True), nullable=True),
    Column("reason_code", String(48), nullable=True),
    Column("failure", JSON, nullable=True),
    Column("reference", String(128), nullable=True),
    Column("submitted_by_automation", Boolean, nullable=False, default=False),
    Column("evidence", JSON, nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("crm_synced_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False, default=0),
    Index("ix_jobs_due", "state", "oem", "next_attempt_at"),
    Index("ix_jobs_lease", "state", "lease_expires_at"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(64), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("from_state", String(32), nullable=True),
    Column("to_state", String(32), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("step", String(32), nullable=True),
    Column("reason_code", String(48), nullable=True),
    Column("detail", JSON, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

# How long each step of each attempt took; the runner writes them, budgets and reports read them.
job_steps = Table(
    "job_steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(64), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("step", String(32), nullable=False),
    Column("seconds", Float, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# ---------------------------------------------------------------- webhooks (in and out)
#: The transactional outbox: one row per notification, written in the transaction of the job
#: change (or by the check) that causes it. `event_id` is deterministic (the job and its new
#: version, or the check's idempotency key), so a change or check applied twice writes one row.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("event_id", String(160), primary_key=True),
    Column("event_type", String(48), nullable=False),
    Column("oem", String(32), nullable=True),
    Column("job_id", String(64), nullable=True),
    Column("case_id", String(64), nullable=True),
    Column("state", String(32), nullable=True),
    Column("reason_code", String(48), nullable=True),
    Column("reference", String(128), nullable=True),
    Column("failure", JSON, nullable=True),
    Column("attempt", Integer, nullable=True),
    Column("data", JSON, nullable=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    # Set when the dispatcher rendered the payload and gave each subscriber its delivery: from
    # then on every delivery of the event carries exactly this payload.
    Column("payload", JSON, nullable=True),
    Column("fanned_out_at", DateTime(timezone=True), nullable=True),
    Index("ix_webhook_events_fan_out", "fanned_out_at", "occurred_at"),
)

#: One row per (event, subscriber): at-least-once delivery with a lease, backoff and a budget.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("event_id", String(160), primary_key=True),
    Column("subscription", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    # When it is next due; while a dispatcher holds it, when that dispatcher's lease ends.
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", String(300), nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

#: Accepted inbound API requests ("run now", pushed cases), kept durably before the 202.
api_requests = Table(
    "api_requests",
    metadata,
    Column("sequence", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("client", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("oem", String(32), nullable=True),
    Column("params", JSON, nullable=False),
    Column("idempotency_key", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ux_api_requests_idempotency", "client", "idempotency_key", unique=True),
)

#: Signatures already accepted, until their timestamp falls out of the tolerance window.
api_nonces = Table(
    "api_nonces",
    metadata,
    Column("nonce", String(96), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

#: Each OEM's go-live watch: the clean runs in a row so far, then the baseline they made
#: (`golive_watch.GoLiveState` as JSON). In the database, not on a run's disk: a run in a pod
#: of its own must see what the runs before it recorded.
golive_baselines = Table(
    "golive_baselines",
    metadata,
    Column("oem", String(32), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: The console's failed sign-ins in a row per account name, and until when a name is locked.
console_lockouts = Table(
    "console_lockouts",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", DateTime(timezone=True), nullable=True),
)
