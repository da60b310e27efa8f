"""The local Salesforce org (TLS on loopback) and the real simple-salesforce client against it.

One server for the session; each test starts from an empty org (records, tokens, ledger and
knobs reset). Waits for backoff advance the org's clock instead of sleeping, so "the API limit
is exceeded for a minute" takes no wall time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, instance_for_test

from sandbox.salesforce import CLIENT_ID, USERNAME, SalesforceServer
from sandbox.salesforce.desk import CaseDesk
from submissions_pipeline.crm import CrmStatus
from submissions_pipeline.crm.salesforce import SalesforceCrm
from submissions_pipeline.crm.salesforce_api import Backoff, SalesforceApi, SalesforceAuth
from submissions_pipeline.crm.salesforce_mapping import SalesforceMapping
from submissions_pipeline.settings import Settings


@pytest.fixture(scope="session")
def salesforce_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SalesforceServer]:
    with SalesforceServer(folder=tmp_path_factory.mktemp("salesforce")) as server:
        yield server


@pytest.fixture
def salesforce(salesforce_server: SalesforceServer) -> Iterator[SalesforceServer]:
    salesforce_server.reset()
    salesforce_server.org.batch_size = 2000
    yield salesforce_server
    salesforce_server.reset()


@pytest.fixture
def mapping() -> SalesforceMapping:
    return SalesforceMapping.load()


@pytest.fixture
def desk(salesforce: SalesforceServer, mapping: SalesforceMapping) -> CaseDesk:
    """Where dealer staff enter cases (as a person, not the integration user)."""
    return CaseDesk(salesforce.org, mapping.case_fields, mapping.picklist(CrmStatus.NEW))


class Sleeper:
    """Backoff waits, spent on the org's clock; remembers how long it waited."""

    def __init__(self, server: SalesforceServer):
        self.server, self.waited = server, 0.0

    def __call__(self, seconds: float) -> None:
        self.waited += seconds
        self.server.org.advance(seconds)


def jwt_auth(server: SalesforceServer) -> SalesforceAuth:
    return SalesforceAuth(
        client_id=CLIENT_ID,
        flow="jwt",
        token_url=server.token_url,
        username=USERNAME,
        private_key=server.private_key_pem.decode(),
    )


def make_crm(
    server: SalesforceServer, sleeper: Sleeper | None = None, **backoff: Any
) -> SalesforceCrm:
    api = SalesforceApi(
        jwt_auth(server),
        session=server.requests_session(),
        backoff=Backoff(**backoff) if backoff else None,
        sleep=sleeper or Sleeper(server),
    )
    return SalesforceCrm(api, SalesforceMapping.load())


@pytest.fixture
def sleeper(salesforce: SalesforceServer) -> Sleeper:
    return Sleeper(salesforce)


@pytest.fixture
def sf_crm(salesforce: SalesforceServer, sleeper: Sleeper) -> SalesforceCrm:
    return make_crm(salesforce, sleeper)


# ------------------------------------------------------------------ the nightly job against it


@pytest.fixture(scope="session")
def sandbox_credentials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every sandbox dealer account, as the JSON file the credentials resource reads."""
    from submissions_pipeline.demo import write_sandbox_credentials

    path = tmp_path_factory.mktemp("secrets") / "credentials.json"
    return write_sandbox_credentials(path, ["northwind", "aurora", "kestrel"])


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def salesforce_settings(server: SalesforceServer, db_url: str, home: Path) -> Settings:
    """SUBMISSIONS_CRM=salesforce pointed at the local org, as an operator would set it."""
    return Settings(
        home=home,
        db_url=db_url,
        crm="salesforce",
        salesforce_token_url=server.token_url,
        salesforce_auth_flow="jwt",
        salesforce_client_id=CLIENT_ID,
        salesforce_username=USERNAME,
        salesforce_private_key=server.private_key_pem.decode(),
        salesforce_ca_file=server.ca_file,
        console_url="https://console.example",
        context_cap=2,
    )
