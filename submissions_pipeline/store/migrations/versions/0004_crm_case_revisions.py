"""Embedded CRM: case revisions (revision, changed, changed_after_submission).

A case entered again with different content becomes a new revision marked changed, so intake
reads it again; a revision that arrives after the case was (or may have been) submitted is
recorded in changed_after_submission for a human.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crm_cases") as batch:
        batch.add_column(sa.Column("revision", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(
            sa.Column("changed", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("changed_after_submission", sa.JSON))
    op.create_index("ix_crm_cases_changed", "crm_cases", ["oem", "changed", "sequence"])


def downgrade() -> None:
    op.drop_index("ix_crm_cases_changed", "crm_cases")
    with op.batch_alter_table("crm_cases") as batch:
        batch.drop_column("changed_after_submission")
        batch.drop_column("changed")
        batch.drop_column("revision")
