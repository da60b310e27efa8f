"""Embedded CRM: crm_cases (the case feed) and crm_activity (its append-only log).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "crm_cases",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("oem", sa.String(32), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("raw", sa.JSON, nullable=False),
        sa.Column("test_record", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(64)),
        sa.Column("reference", sa.String(128)),
        sa.Column("evidence_url", sa.Text),
        sa.Column("failure", sa.JSON),
        sa.Column("field_errors", sa.JSON),
        sa.Column("submitted_by_automation", sa.Boolean, nullable=False),
        sa.Column("submitted_by", sa.String(128)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_crm_cases_sequence", "crm_cases", ["sequence"], unique=True)
    op.create_index("ix_crm_cases_feed", "crm_cases", ["oem", "status", "sequence"])
    op.create_table(
        "crm_activity",
        sa.Column("activity_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), sa.ForeignKey("crm_cases.case_id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("job_id", sa.String(64)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_crm_activity_case_id", "crm_activity", ["case_id"])


def downgrade() -> None:
    op.drop_table("crm_activity")
    op.drop_table("crm_cases")
