"""The embedded CRM on each backend the `db_url` fixture gives (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from submissions_pipeline.crm import EmbeddedCrm


@pytest.fixture
def crm(db_url: str, clock) -> Iterator[EmbeddedCrm]:
    c = EmbeddedCrm.from_url(db_url, clock=clock)
    yield c
    c.dispose()
