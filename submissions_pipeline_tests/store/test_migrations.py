"""The migrations build exactly the tables the code declares, on both backends."""

from __future__ import annotations

import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from submissions_pipeline.crm import EmbeddedCrm
from submissions_pipeline.store import migrate
from submissions_pipeline.store.engine import make_engine
from submissions_pipeline.store.schema import metadata
from submissions_pipeline_tests.factories import case_record


def test_the_migrated_schema_is_the_declared_one(db_url):
    crm = EmbeddedCrm.from_url(db_url)  # importing the CRM declares its tables too
    with crm.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    crm.dispose()
    assert diff == []


def test_cases_filed_before_revisions_existed_read_as_their_first_revision(db_url, clock):
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0002")
    now = clock()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO crm_cases (case_id, oem, sequence, raw, test_record, status, "
                "submitted_by_automation, created_at, updated_at) VALUES ('CASE-00001', "
                "'northwind', 1, :raw, false, 'new', false, :now, :now)"
            ),
            {"raw": json.dumps(case_record(1)), "now": now},
        )
    migrate.upgrade(engine)
    case = EmbeddedCrm(engine).get_case("CASE-00001")
    assert (case.revision, case.changed, case.changed_after_submission) == (1, False, None)
    engine.dispose()
