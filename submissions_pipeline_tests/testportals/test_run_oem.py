"""`submissions run --oem X` from a shell against a portal the sandbox does not serve: the
addresses and dealer accounts come from the environment, the cases from `submissions cases
import`, and each case reaches the portal once and the CRM as submitted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sandbox.testportals import ADAPTERS_DIR
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
from submissions_pipeline_tests.testportals.conftest import portal_case


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "submissions_pipeline.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_run_oem_submits_the_crms_cases_through_the_configured_portal_once(test_portals, tmp_path):
    server = test_portals["meridian"]
    db_url = f"sqlite:///{tmp_path / 'submissions.db'}"
    credentials = tmp_path / "dealers.json"
    credentials.write_text(json.dumps(server.portal.credentials_document()))
    env = {
        **os.environ,
        "SUBMISSIONS_HOME": str(tmp_path / "home"),
        "SUBMISSIONS_DB_URL": db_url,
        "SUBMISSIONS_ADAPTERS_DIR": str(ADAPTERS_DIR),
        "SUBMISSIONS_PORTAL_URLS": json.dumps({"meridian": server.base_url}),
        "SUBMISSIONS_CREDENTIALS_FILE": str(credentials),
    }
    cases = [portal_case(n, "meridian").model_dump(mode="json") for n in (1, 2, 3)]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    imported = cli(env, "cases", "import", str(tmp_path / "cases.json"))
    assert imported.returncode == 0, imported.stdout + imported.stderr

    run = cli(env, "run", "--oem", "meridian")

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"meridian: running the nightly job against {server.base_url}" in run.stdout
    ledger = server.portal.ledger.entries()
    assert sorted(e.case_id for e in ledger) == [c["case_id"] for c in cases]  # once each
    crm = EmbeddedCrm.from_url(db_url, migrate_schema=False)
    try:
        by_id = {c.case_id: c for c in crm.list_cases(oem="meridian")}
    finally:
        crm.dispose()
    assert all(by_id[e.case_id].reference == e.reference for e in ledger)
    assert all(c.status is CrmStatus.SUBMITTED for c in by_id.values())
    for dealer in server.portal.credentials_document()["meridian"].values():
        assert dealer["password"] not in run.stdout + run.stderr


def test_run_oem_names_what_the_environment_lacks(tmp_path):
    env = {
        **os.environ,
        "SUBMISSIONS_HOME": str(tmp_path / "home"),
        "SUBMISSIONS_ADAPTERS_DIR": str(ADAPTERS_DIR),
        "SUBMISSIONS_PORTAL_URLS": json.dumps({"harbor": "http://127.0.0.1:9"}),
    }
    env.pop("SUBMISSIONS_CREDENTIALS_FILE", None)
    env.pop("SUBMISSIONS_CREDENTIALS", None)

    out = cli(env, "run", "--oem", "meridian", "--oem", "nosuch")

    assert out.returncode == 2
    assert "meridian: SUBMISSIONS_PORTAL_URLS has no address" in out.stderr
    assert "nosuch: no adapter is registered" in out.stderr
    assert "SUBMISSIONS_CREDENTIALS_FILE" in out.stderr
