"""Table definitions of the embedded CRM (migrations 0002 and 0003 create them in the project
database).

They join the job store's metadata so that Alembic sees one schema for the one database.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
)

from submissions_pipeline.store.schema import metadata

crm_cases = Table(
    "crm_cases",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("oem", String(32), nullable=False),
    # The feed position: handed out in commit order (see EmbeddedCrm._next_sequence), so a
    # cursor reader never skips a case that committed late.
    Column("sequence", BigInteger, nullable=False),
    Column("raw", JSON, nullable=False),
    Column("test_record", Boolean, nullable=False),
    Column("status", String(32), nullable=False),
    Column("job_id", String(64), nullable=True),
    Column("reference", String(128), nullable=True),
    Column("evidence_url", Text, nullable=True),
    Column("failure", JSON, nullable=True),
    Column("field_errors", JSON, nullable=True),
    Column("submitted_by_automation", Boolean, nullable=False),
    Column("submitted_by", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # How many times the case was entered with different content (1: as first entered), and
    # whether the newest revision still waits for intake: a changed case is in the feed again
    # whatever its status, until intake answers for that revision.
    Column("revision", Integer, nullable=False, server_default="1"),
    Column("changed", Boolean, nullable=False, server_default=false()),
    # Set when a revision arrived after the case was (or may have been) submitted: the portal
    # holds an earlier version and a human must reconcile them.
    Column("changed_after_submission", JSON, nullable=True),
    Index("ix_crm_cases_sequence", "sequence", unique=True),
    Index("ix_crm_cases_feed", "oem", "status", "sequence"),
    Index("ix_crm_cases_changed", "oem", "changed", "sequence"),
)

crm_activity = Table(
    "crm_activity",
    metadata,
    Column("activity_id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(64), ForeignKey("crm_cases.case_id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("job_id", String(64), nullable=True),
    Column("status", String(32), nullable=False),
    Column("changes", JSON, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
