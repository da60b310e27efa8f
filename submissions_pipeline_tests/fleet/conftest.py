"""Fixtures of the fleet tests: a PostgreSQL job store and a fleet of worker processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.fleet.harness import Fleet


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[JobStore]:
    store = JobStore.from_url(pg_url)
    yield store
    store.dispose()


@pytest.fixture
def fleet(pg_store: JobStore, pg_url: str, sandbox, tmp_path) -> Iterator[Fleet]:
    f = Fleet(pg_url, sandbox, tmp_path, ["northwind", "aurora", "kestrel"])
    yield f
    f.stop_all()
