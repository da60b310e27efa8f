"""Webhooks: the outbox (webhook_events, webhook_deliveries) and the inbound API's requests and
nonces (api_requests, api_nonces).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("event_id", sa.String(160), primary_key=True),
        sa.Column("event_type", sa.String(48), nullable=False),
        sa.Column("oem", sa.String(32)),
        sa.Column("job_id", sa.String(64)),
        sa.Column("case_id", sa.String(64)),
        sa.Column("state", sa.String(32)),
        sa.Column("reason_code", sa.String(48)),
        sa.Column("reference", sa.String(128)),
        sa.Column("failure", sa.JSON),
        sa.Column("attempt", sa.Integer),
        sa.Column("data", sa.JSON),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("payload", sa.JSON),
        sa.Column("fanned_out_at", TS),
    )
    op.create_index("ix_webhook_events_fan_out", "webhook_events", ["fanned_out_at", "occurred_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("event_id", sa.String(160), primary_key=True),
        sa.Column("subscription", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.String(300)),
        sa.Column("delivered_at", TS),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_table(
        "api_requests",
        sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("oem", sa.String(32)),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(128)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index(
        "ux_api_requests_idempotency", "api_requests", ["client", "idempotency_key"], unique=True
    )
    op.create_table(
        "api_nonces",
        sa.Column("nonce", sa.String(96), primary_key=True),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_api_nonces_expires_at", "api_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_table("api_nonces")
    op.drop_table("api_requests")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
