"""`submissions new-oem` scaffolds an adapter from a portal it has never seen: the login part of
its selector file comes from the portal's own login form, so check-adapter logs in on the first
try and then reports each TODO locator with the page's closest elements."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sandbox.testportals import ADAPTERS_DIR
from submissions_pipeline_tests.testportals.conftest import portal_case


def cli(tmp_path: Path, adapters_dir: Path, *args: str, env: dict[str, str] | None = None):
    full = {
        **os.environ,
        "SUBMISSIONS_HOME": str(tmp_path / "home"),
        "SUBMISSIONS_ADAPTERS_DIR": str(adapters_dir),
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "submissions_pipeline.cli", *args]
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=180)


def test_new_oem_scaffolds_from_the_login_page_and_check_adapter_logs_in(test_portals, tmp_path):
    # An adapters folder of a deployment (any name; its parent makes it importable).
    adapters_dir = tmp_path / "acme_adapters"
    shutil.copytree(ADAPTERS_DIR, adapters_dir)
    harbor = test_portals["harbor"]

    made = cli(tmp_path, adapters_dir, "new-oem", "acme", "--url", harbor.base_url)

    assert made.returncode == 0, made.stdout + made.stderr
    folder = adapters_dir / "acme"
    selectors = json.loads((folder / "selectors" / "v1.json").read_text())
    assert selectors["paths"]["login"] == "/signin"
    assert selectors["login"]["fields"] == {
        "username": {"label": "Username"},
        "password": {"label": "Password"},
    }
    assert selectors["login"]["submit"] == {"role": "button", "name": "Sign in"}
    assert 'oem = "acme"' in (folder / "__init__.py").read_text()
    assert (folder / "oem.toml").exists()
    assert (
        '[acme]\nadapter = "acme_adapters.acme:AcmeAdapter"'
        in (adapters_dir / "registry.toml").read_text()
    )
    again = cli(tmp_path, adapters_dir, "new-oem", "acme", "--url", harbor.base_url)
    assert again.returncode == 2 and "exists already" in again.stderr

    creds = harbor.portal.credentials_document()["harbor"]
    checked = cli(
        tmp_path,
        adapters_dir,
        "check-adapter",
        "acme",
        "--action-timeout-ms",
        "2000",
        "--case-file",
        str(_case_file(tmp_path)),
        env={
            "SUBMISSIONS_PORTAL_URLS": json.dumps({"acme": harbor.base_url}),
            "SUBMISSIONS_CREDENTIALS": json.dumps({"acme": creds}),
        },
    )
    out = checked.stdout
    assert checked.returncode == 1, out + checked.stderr
    assert "ok   login" in out and "FAIL fill" in out
    assert "missing: {'label': 'TODO VIN'}" in out
    assert "closest: {'label': 'VIN'}" in out
    assert harbor.portal.ledger.entries() == []
    for dealer in creds.values():
        assert dealer["password"] not in out + checked.stderr + made.stdout


def _case_file(tmp_path: Path) -> Path:
    path = tmp_path / "case.json"
    path.write_text(portal_case(1, "acme").model_dump_json())
    return path
