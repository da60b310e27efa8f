"""Shared fixtures: real databases (SQLite files and throwaway PostgreSQL databases), a clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from submissions_pipeline.artifacts import S3ArtifactStore
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.servers import MotoServer, new_bucket_name

PG_ENV = "SUBMISSIONS_TEST_PG_URL"


class ManualClock:
    """A clock tests move by hand, so leases, retries and queue age are exact."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 11, 26, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The PostgreSQL server the suite runs against. Missing means failure, never a skip."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.fail(
            f"{PG_ENV} is not set: the store suite must run against a real PostgreSQL "
            "(make test sets it to postgresql://postgres@127.0.0.1:5432/test)"
        )
    return url


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database with a unique name, dropped afterwards."""
    name = f"sp_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        make_url(pg_admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url: str, clock: ManualClock) -> Iterator[JobStore]:
    s = JobStore.from_url(db_url, clock=clock)
    yield s
    s.dispose()


# --------------------------------------------------------------------------- sandbox + runner


@pytest.fixture(scope="session")
def sandbox_server():
    """All sandbox portals on free loopback ports for the whole session."""
    from sandbox import SandboxServer

    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server):
    """The shared sandbox with every knob and ledger reset before and after the test."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


@pytest.fixture
def runner_deps(sandbox, tmp_path):
    """A worker's dependencies: a fresh SQLite store, local artifacts, sandbox credentials."""
    import adapters
    from sandbox.accounts import credentials_document
    from submissions_pipeline.artifacts import LocalArtifactStore
    from submissions_pipeline.credentials import JsonCredentialProvider
    from submissions_pipeline.runner import RunnerDeps

    oems = adapters.sandbox_oem_keys()
    store = JobStore.from_url(f"sqlite:///{tmp_path / 'jobs.db'}")
    deps = RunnerDeps(
        store=store,
        artifacts=LocalArtifactStore(tmp_path / "artifacts"),
        credentials=JsonCredentialProvider(credentials_document(oems)),
        adapters=adapters.registry().load_adapters(oems),
        portal_urls={oem: sandbox.base_url(oem) for oem in oems},
        home=tmp_path,
    )
    yield deps
    store.dispose()


# --------------------------------------------------------------------------- S3 (moto's server)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoServer]:
    """The S3 server shared by the session; tests isolate themselves with a bucket each."""
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def moto_s3_disposable() -> Iterator[MotoServer]:
    """An S3 server of the test's own, which the test may stop."""
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_s3_client(moto_s3: MotoServer) -> Any:
    """One boto3 client for the session (built by from_endpoint): clients are slow to create."""
    return moto_s3.store().client


@pytest.fixture
def s3_store(moto_s3_client: Any) -> S3ArtifactStore:
    """A store in a fresh bucket of the session server, env "dev"."""
    store = S3ArtifactStore(moto_s3_client, new_bucket_name(), env="dev")
    store.ensure_bucket()
    return store


# --------------------------------------------------------------------------- browsers

#: The two browsers the runner can drive: Playwright's default headless shell (the default) and
#: Debian's full Chromium (headed debugging, and the fallback where the shell is absent).
BROWSER_BINARIES = {
    "headless-shell": "/usr/lib/chromium/chromium-headless-shell",
    "full-chromium": "/usr/lib/chromium/chromium",
}


@pytest.fixture(params=sorted(BROWSER_BINARIES))
def browser_binary(request) -> str:
    """Each test using this runs on both binaries; a missing one fails (make test installs both)."""
    path = BROWSER_BINARIES[request.param]
    if not os.path.exists(path):
        pytest.fail(f"{path} is not installed (scripts/install-system-deps.sh installs it)")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The minutes-long tests go first: the scheduler soak, then the daemon stack's tests (one
    worker process runs them all on one stack, `--dist loadgroup`). With the suite spread over
    worker processes they then run beside the rest instead of alone at the end."""

    def order(item: pytest.Item) -> int:
        if item.get_closest_marker("scheduler_soak") is not None:
            return 0
        return 1 if item.get_closest_marker("xdist_group") is not None else 2

    items.sort(key=order)
