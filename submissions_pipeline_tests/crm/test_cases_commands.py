"""`submissions cases add|import` from a shell: cases for any OEM into the embedded CRM; a bad
row gets field-level errors and every other row is still added."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from submissions_pipeline.crm import EmbeddedCrm


def cli(tmp_path: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUBMISSIONS_HOME": str(tmp_path / "home"), "SUBMISSIONS_DB_URL": db_url}
    cmd = [sys.executable, "-m", "submissions_pipeline.cli", "cases", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


WORK = "Squealing noise at idle,Worn drive belt,Replaced drive belt"
PAYLOAD = {
    "repair_date": "2026-11-02",
    "mileage": 12000,
    "complaint": "Engine light on",
    "cause": "Coil",
    "correction": "Replaced coil",
    "labor_hours": 1.2,
    "part_number": "IGN-4471",
    "extra": {"category": "powertrain"},
}


def test_add_one_case_then_import_a_file_whose_bad_row_costs_nothing_else(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'crm.db'}"
    added = cli(
        tmp_path,
        db_url,
        "add",
        "--oem",
        "harbor",
        "--case-id",
        "RO-1",
        "--dealer",
        "D1001",
        "--vin",
        "1HGCM82633A004352",
        "--payload",
        json.dumps(PAYLOAD),
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert "added RO-1" in added.stdout

    csv_file = tmp_path / "cases.csv"
    csv_file.write_text(
        "case_id,dealer_id,vin,repair_date,mileage,complaint,cause,correction,labor_hours,"
        "part_number,extra.category\n"
        f"RO-2,D1002,1HGCM82633A004352,2026-11-03,15000,{WORK},0.5,BLT-1,body\n"
        f"RO-3,D1002,NOT-A-VIN,2026-11-03,lots,{WORK},0.5,BLT-1,body\n"
    )
    imported = cli(tmp_path, db_url, "import", str(csv_file), "--oem", "harbor")

    assert imported.returncode == 1
    assert "added RO-2" in imported.stdout and "1 added" in imported.stdout
    errors = imported.stderr
    assert "row 2 (RO-3): vin:" in errors and "row 2 (RO-3): payload.mileage:" in errors
    crm = EmbeddedCrm.from_url(db_url)
    stored = {c.case_id: c for c in crm.list_cases(oem="harbor")}
    assert set(stored) == {"RO-1", "RO-2"}
    crm.dispose()
