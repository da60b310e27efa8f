"""`submissions check-adapter` walks a real portal up to the submit click from a shell: it never
submits, reports each step, and for a missing element shows the locator and the closest ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.testportals import ADAPTERS_DIR
from submissions_pipeline.runner import run_batch
from submissions_pipeline_tests.factories import quick_config
from submissions_pipeline_tests.testportals.conftest import portal_case


def check_adapter(oem: str, servers, tmp_path: Path, adapters_dir: Path, *args: str):
    server = servers[oem]
    env = {
        **os.environ,
        "SUBMISSIONS_HOME": str(tmp_path / "home"),
        "SUBMISSIONS_ADAPTERS_DIR": str(adapters_dir),
        "SUBMISSIONS_PORTAL_URLS": json.dumps({oem: server.base_url}),
        "SUBMISSIONS_CREDENTIALS": json.dumps(server.portal.credentials_document()),
    }
    cmd = [sys.executable, "-m", "submissions_pipeline.cli", "check-adapter", oem, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def case_file(tmp_path: Path, name: str, oem: str, n: int) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(portal_case(n, oem).model_dump_json())
    return path


@pytest.mark.parametrize("oem", ["harbor", "meridian"])
def test_check_walks_to_the_submit_button_and_finds_a_known_submission(
    oem, portal_deps, test_portals, tmp_path
):
    portal = test_portals[oem].portal
    known = portal_deps.store.enqueue(portal_case(1, oem)).job_id
    run_batch(quick_config(), portal_deps)
    reference = portal_deps.store.get(known).reference
    assert reference and len(portal.ledger.entries()) == 1

    out = check_adapter(
        oem,
        test_portals,
        tmp_path,
        ADAPTERS_DIR,
        "--case-file",
        str(case_file(tmp_path, "new", oem, 6)),  # same dealer as case 1
        "--lookup-file",
        str(case_file(tmp_path, "known", oem, 1)),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for step in ("login", "search", "fill", "lookup"):
        assert f"ok   {step}" in out.stdout
    assert f"reference {reference}" in out.stdout, out.stdout
    assert "adapter check passed" in out.stdout
    shots = sorted(p.name for p in (tmp_path / "home" / "check" / oem).glob("*.png"))
    assert shots == ["01-login.png", "02-search.png", "03-fill.png", "04-lookup.png"]
    assert len(portal.ledger.entries()) == 1  # walked up to the submit click, never through
    for dealer in portal.credentials_document()[oem].values():
        assert dealer["password"] not in out.stdout + out.stderr


def test_a_renamed_label_is_reported_with_the_missing_locator_and_the_closest(
    test_portals, tmp_path
):
    adapters_dir = tmp_path / "adapters"
    shutil.copytree(ADAPTERS_DIR, adapters_dir)
    path = adapters_dir / "harbor" / "selectors" / "v1.json"
    path.write_text(path.read_text().replace('"Odometer"', '"Odometer (km)"'))
    out = check_adapter("harbor", test_portals, tmp_path, adapters_dir)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ok   login" in out.stdout and "FAIL fill" in out.stdout
    assert "missing: {'label': 'Odometer (km)', 'frame': 'iframe#claim-frame'}" in out.stdout
    closest = [line for line in out.stdout.splitlines() if "closest:" in line]
    assert "{'label': 'Odometer'}" in closest[0]
    # Arrays are replaced whole by a JSON merge patch: the step comes back with the old label.
    (patch_line,) = [line for line in out.stdout.splitlines() if "suggested patch" in line]
    assert "harbor/selectors/v1.json" in patch_line and '"label": "Odometer"}' in patch_line
    assert test_portals["harbor"].portal.ledger.entries() == []


def test_a_selector_file_with_an_unknown_key_names_file_and_path(test_portals, tmp_path):
    adapters_dir = tmp_path / "adapters"
    shutil.copytree(ADAPTERS_DIR, adapters_dir)
    path = adapters_dir / "meridian" / "selectors" / "v1.json"
    data = json.loads(path.read_text())
    data["review"]["submit"]["dialogue"] = "accept"
    path.write_text(json.dumps(data))
    out = check_adapter("meridian", test_portals, tmp_path, adapters_dir)
    assert out.returncode == 2
    assert f"{path}: review.submit: unknown key 'dialogue'" in out.stderr


def test_a_portal_searched_by_its_own_reference_finds_the_case_only_with_that_reference(
    portal_deps, test_portals, tmp_path
):
    known = portal_deps.store.enqueue(portal_case(1, "harbor")).job_id
    run_batch(quick_config(), portal_deps)
    reference = portal_deps.store.get(known).reference
    assert reference
    adapters_dir = tmp_path / "adapters"
    shutil.copytree(ADAPTERS_DIR, adapters_dir)
    path = adapters_dir / "harbor" / "selectors" / "v1.json"
    data = json.loads(path.read_text())
    data["lookup"].update({"by": "reference", "match": ["reference", "vin"]})
    path.write_text(json.dumps(data))
    lookup = (
        "--case-file",
        str(case_file(tmp_path, "new", "harbor", 6)),
        "--lookup-file",
        str(case_file(tmp_path, "known", "harbor", 1)),
    )

    found = check_adapter(
        "harbor", test_portals, tmp_path, adapters_dir, *lookup, "--lookup-reference", reference
    )
    unknown = check_adapter("harbor", test_portals, tmp_path, adapters_dir, *lookup)

    assert found.returncode == 0, found.stdout + found.stderr
    assert f"reference {reference}" in found.stdout
    # Without the portal's reference nothing proves the case is (or is not) there.
    assert unknown.returncode == 1 and "FAIL lookup" in unknown.stdout
    assert "searched by its own reference and none was read" in unknown.stdout
    assert len(test_portals["harbor"].portal.ledger.entries()) == 1
