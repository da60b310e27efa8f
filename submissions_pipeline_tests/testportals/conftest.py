"""Fixtures for the test portals (sandbox/testportals): one server per portal per session, and
a worker's dependencies wired to the portals' own adapters folder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.testportals import ADAPTERS_DIR, TEST_PORTALS, TestPortalServer
from submissions_pipeline.domain import Case
from submissions_pipeline.oems import OemRegistry
from submissions_pipeline_tests.factories import case_record

#: Portal fields these OEMs ask for beyond the common payload (CRM extra fields).
EXTRA = {"category": "powertrain", "coverage": "extended", "vehicle_off_road": True}


@pytest.fixture(scope="session")
def test_portal_servers() -> Iterator[dict[str, TestPortalServer]]:
    """Every test portal on a free loopback port for the session."""
    servers = {oem: TestPortalServer(cls()) for oem, cls in TEST_PORTALS.items()}
    for server in servers.values():
        server.__enter__()
    yield servers
    for server in servers.values():
        server.__exit__(None, None, None)


@pytest.fixture
def test_portals(test_portal_servers: dict[str, TestPortalServer]):
    """The servers with every portal's ledger, sessions and knobs reset around the test."""
    for server in test_portal_servers.values():
        server.portal.reset()
    yield test_portal_servers
    for server in test_portal_servers.values():
        server.portal.reset()


@pytest.fixture
def portal_deps(test_portals: dict[str, TestPortalServer], tmp_path) -> Iterator[Any]:
    """A worker's dependencies: a fresh SQLite store, local artifacts, the portals' accounts."""
    from submissions_pipeline.artifacts import LocalArtifactStore
    from submissions_pipeline.credentials import JsonCredentialProvider
    from submissions_pipeline.runner import RunnerDeps
    from submissions_pipeline.store import JobStore

    document: dict[str, Any] = {}
    for server in test_portals.values():
        document.update(server.portal.credentials_document())
    store = JobStore.from_url(f"sqlite:///{tmp_path / 'jobs.db'}")
    deps = RunnerDeps(
        store=store,
        artifacts=LocalArtifactStore(tmp_path / "artifacts"),
        credentials=JsonCredentialProvider(document),
        adapters=OemRegistry.load(ADAPTERS_DIR).load_adapters(),
        portal_urls={oem: server.base_url for oem, server in test_portals.items()},
        home=tmp_path,
    )
    yield deps
    store.dispose()


def portal_case(n: int, oem: str, **payload: Any) -> Case:
    """A case for a test portal: the common payload plus the extra fields its portal asks for."""
    record = case_record(n, oem=oem)
    record["payload"].update({"extra": dict(EXTRA), **payload})
    return Case.model_validate(record)
