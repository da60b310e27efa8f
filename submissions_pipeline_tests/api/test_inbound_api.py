"""The inbound API over real HTTP: signed run-now requests start one run each, pushed cases go
through the CRM's intake, and every refused request is a clear 4xx with nothing recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from dagster import DagsterInstance, build_sensor_context, validate_run_config

from submissions_pipeline.api.app import ApiClients, create_app
from submissions_pipeline.api.sensors import run_now_requests_sensor
from submissions_pipeline.api.signing import signature_header
from submissions_pipeline.artifacts import LocalArtifactStore
from submissions_pipeline.assets.crm_cases import intake_case, read_feed
from submissions_pipeline.crm import EmbeddedCrm
from submissions_pipeline.crm.base import CrmStatus
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.resource_sets import resource_set
from submissions_pipeline.resources import JobStoreResource
from submissions_pipeline.schedules import nightly_job
from submissions_pipeline.settings import Settings
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import case_record
from submissions_pipeline_tests.servers import AppServer

#: Short secrets on purpose: nothing may print or store them, whatever their length.
OLD, NEW, TOKEN = "k3y0", "n3wk3y", "t0k3n"
OEM = "northwind"
MAX_BODY = 2048


class Api:
    """A client that signs like a CRM would."""

    def __init__(self, url: str, client: str = "crm", secrets: tuple[str, ...] = (NEW,)):
        self.url, self.client, self.secrets = url, client, secrets

    def post(
        self,
        path: str,
        body: bytes | dict[str, Any] = b"",
        *,
        t: int | None = None,
        headers: dict[str, str] | None = None,
        signed: bool = True,
    ) -> requests.Response:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        sent = {"Content-Type": "application/json", "Submissions-Client": self.client}
        if signed:
            t = int(time.time()) if t is None else t
            sent["Submissions-Signature"] = signature_header(list(self.secrets), t, raw)
        sent.update(headers or {})
        return requests.post(self.url + path, data=raw, headers=sent, timeout=10)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[JobStore]:
    s = JobStore.from_url(sqlite_url)
    yield s
    s.dispose()


@pytest.fixture
def crm(sqlite_url: str, store: JobStore) -> Iterator[EmbeddedCrm]:
    c = EmbeddedCrm.from_url(sqlite_url)
    yield c
    c.dispose()


def serve(store: JobStore, crm: EmbeddedCrm, rate_per_minute: int = 600) -> AppServer:
    clients = ApiClients(hmac={"crm": [OLD, NEW]}, bearer={"salesforce": [TOKEN]})
    app = create_app(
        store,
        crm,
        oem_registry().oem_keys(),
        clients,
        rate_per_minute=rate_per_minute,
        max_body_bytes=MAX_BODY,
    )
    return AppServer(app).start()


@pytest.fixture
def api(store: JobStore, crm: EmbeddedCrm) -> Iterator[Api]:
    server = serve(store, crm)
    yield Api(server.url)
    server.stop()


def run_requests(store: JobStore, sqlite_url: str, cursor: str | None = None) -> Any:
    with build_sensor_context(
        instance=DagsterInstance.ephemeral(),
        cursor=cursor,
        resources={"job_store": JobStoreResource(db_url=sqlite_url)},
    ) as context:
        return run_now_requests_sensor(context)


def test_a_signed_run_now_starts_exactly_one_run_for_that_oem(api, store, sqlite_url, tmp_path):
    body = {"max_jobs": 7, "priority_order": "redaction_sensitive_first"}
    t = int(time.time())
    first = api.post(f"/v1/oems/{OEM}/run-now", body, t=t)
    assert first.status_code == 202, first.text
    request_id = first.json()["request_id"]
    # The same signed request delivered again (a proxy retry, an attacker): refused.
    again = api.post(f"/v1/oems/{OEM}/run-now", body, t=t)
    assert (again.status_code, again.json()["error"]) == (409, "replayed")

    result = run_requests(store, sqlite_url)
    (run,) = result.run_requests
    assert (run.run_key, run.partition_key) == (request_id, OEM)
    defs = build_definitions(resource_set(Settings(home=tmp_path, db_url=sqlite_url)))
    validate_run_config(defs.resolve_job_def(nightly_job.name), run.run_config)
    plan = run.run_config["ops"]["submission_runs"]["ops"]["plan_workers"]["config"]
    assert plan == {"max_jobs": 7, "priority_order": "REDACTION_SENSITIVE_FIRST"}
    # Looked at again (from its cursor or, cursor lost, from the start): the same run key.
    assert run_requests(store, sqlite_url, result.cursor).run_requests == []
    assert [r.run_key for r in run_requests(store, sqlite_url).run_requests] == [request_id]


def test_a_resend_under_the_same_idempotency_key_is_the_same_request(api, store, sqlite_url):
    headers = {"Idempotency-Key": "nightly-override-1"}
    first = api.post(f"/v1/oems/{OEM}/run-now", {}, headers=headers)
    second = api.post(f"/v1/oems/{OEM}/run-now", {}, t=int(time.time()) - 1, headers=headers)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["request_id"] == second.json()["request_id"]
    assert len(run_requests(store, sqlite_url).run_requests) == 1


def test_both_secrets_of_a_rotation_are_accepted(api, store):
    old = Api(api.url, secrets=(OLD,)).post(f"/v1/oems/{OEM}/run-now", {})
    both = Api(api.url, secrets=("wrong1", NEW)).post(f"/v1/oems/{OEM}/run-now", {})
    assert (old.status_code, both.status_code) == (202, 202)


REFUSALS = {
    "unsigned": (401, "bad_signature", {"signed": False}),
    "badly signed": (401, "bad_signature", {"secrets": ("nope",)}),
    "unknown client": (401, "unauthenticated", {"client": "stranger"}),
    "stale": (401, "stale_timestamp", {"t": -301}),
    "from the future": (401, "stale_timestamp", {"t": 301}),
    "oversize": (
        413,
        "body_too_large",
        {"body": b'{"max_jobs": 1, "pad": "' + b"x" * MAX_BODY + b'"}'},
    ),
    "malformed": (400, "malformed_json", {"body": b'{"max_jobs": '}),
    "unknown field": (422, "invalid_parameters", {"body": {"max_jobs": 1, "workers": 99}}),
    "negative budget": (422, "invalid_parameters", {"body": {"max_jobs": -1}}),
    "unknown oem": (404, "unknown_oem", {"oem": "nowhere"}),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_request_is_a_clear_4xx_and_records_nothing(api, store, case):
    status, code, how = REFUSALS[case]
    client = Api(api.url, client=how.get("client", "crm"), secrets=how.get("secrets", (NEW,)))
    body = how.get("body", {"max_jobs": 1})
    t = int(time.time()) + how["t"] if "t" in how else None
    resp = client.post(
        f"/v1/oems/{how.get('oem', OEM)}/run-now", body, t=t, signed=how.get("signed", True)
    )
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == code
    assert store.api_requests_after(0) == []


def test_too_many_requests_from_one_client_are_refused(store, crm):
    server = serve(store, crm, rate_per_minute=2)
    try:
        api = Api(server.url)
        statuses = [
            api.post(f"/v1/oems/{OEM}/run-now", {"max_jobs": n}).status_code for n in range(3)
        ]
        refused = api.post(f"/v1/oems/{OEM}/run-now", {})
    finally:
        server.stop()
    assert statuses == [202, 202, 429]
    assert refused.json()["error"] == "rate_limited" and "Retry-After" in refused.headers
    assert len(store.api_requests_after(0)) == 2


def intake(store: JobStore, crm: EmbeddedCrm, tmp_path) -> list[dict[str, Any]]:
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    rows, _ = read_feed(
        crm,
        OEM,
        None,
        50,
        lambda r: intake_case(r, store=store, crm=crm, artifacts=artifacts, actor="test", oem=OEM),
    )
    return rows


def test_a_pushed_case_goes_through_the_crm_intake(api, store, crm, tmp_path):
    resp = api.post("/v1/cases", case_record(1, oem=OEM))
    assert resp.status_code == 202, resp.text
    assert resp.json()["case_id"] == "CASE-00001"
    (row,) = intake(store, crm, tmp_path)
    assert row["valid"] and row["created"]
    assert store.get(row["job_id"]).case_id == "CASE-00001"


def test_an_invalid_pushed_case_goes_back_to_the_crm_as_invalid_data(api, store, crm, tmp_path):
    resp = api.post("/v1/cases", case_record(2, oem=OEM, vin="NOT-A-VIN"))
    assert resp.status_code == 202
    (row,) = intake(store, crm, tmp_path)
    assert not row["valid"] and "vin" in row["field_errors"]
    assert crm.get_case("CASE-00002").status is CrmStatus.INVALID_DATA
    assert store.list_jobs(oem=OEM) == []


def test_a_case_the_crm_cannot_file_is_refused_at_once(api, store, crm):
    resp = api.post("/v1/cases", {"vin": "1FTFW1ET5DFC10312"})
    assert (resp.status_code, resp.json()["error"]) == (422, "invalid_case")
    assert crm.list_cases() == [] and store.api_requests_after(0) == []


def test_a_crm_that_cannot_sign_pushes_with_its_bearer_token(api, crm):
    headers = {"Authorization": f"Bearer {TOKEN}", "Submissions-Client": ""}
    resp = Api(api.url).post("/v1/cases", case_record(3), headers=headers, signed=False)
    assert resp.status_code == 202, resp.text
    wrong = {"Authorization": "Bearer n0pe"}
    assert (
        Api(api.url).post("/v1/cases", case_record(4), headers=wrong, signed=False).status_code
        == 401
    )
    assert [c.case_id for c in crm.list_cases()] == ["CASE-00003"]


def test_the_served_openapi_document_describes_every_route_and_refusal(api):
    doc = requests.get(api.url + "/v1/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.")
    run_now = doc["paths"]["/v1/oems/{oem}/run-now"]["post"]
    cases = doc["paths"]["/v1/cases"]["post"]
    for status, _, _ in REFUSALS.values():
        assert str(status) in run_now["responses"]
    assert {"202", "200", "409", "429"} <= set(run_now["responses"])
    assert {"202", "401", "422"} <= set(cases["responses"])
    oem_param = next(p for p in run_now["parameters"] if p["name"] == "oem")
    assert set(oem_param["schema"]["enum"]) == set(oem_registry().oem_keys())
    assert "job.failed_terminal" in doc["x-webhook-events"]
