"""The PostgreSQL fleet soak at a handful of jobs: three worker processes, killed and drained
while the nightly runs observe in fleet mode, and every case still settles once, on a portal
whose lookup lags behind its records and with a dealer whose password is five characters."""

from __future__ import annotations

import json

from bench.fleet_soak import FleetSoakConfig, run_fleet_soak
from bench.soak import LaggingPortal


def test_a_small_fleet_soak_with_killed_workers_passes_the_soak_bar(pg_admin_url, tmp_path):
    cfg = FleetSoakConfig(
        jobs=5,
        oems=["northwind"],
        invalid_share=0.0,
        workers=3,
        kill_every_s=12,
        first_kill_after_s=3,  # a quiet machine settles five jobs in under 12 s
        lease_s=4,
        retry_time_scale=0.002,
        context_cap=1,
        # Half the submits are recorded and answered with a 504; the lookup never shows them
        # and the OEM trusts no miss, so those go to a person instead of a second submit.
        lagging_portal=LaggingPortal(oem="northwind", drop_after_submit_rate=0.5),
        short_password="Kw7pZ",
        pg_url=pg_admin_url,
        keep_database=False,
        out_dir=tmp_path / "soak",
    )
    report = run_fleet_soak(cfg, echo=lambda _line: None)

    assert report.kills + report.drains >= 1 and report.drains_exit_0 == report.drains
    assert report.duplicates == 0 and report.orphans == 0 and report.unsettled == 0
    assert report.wrong_submissions == [] and report.stuck == []
    assert report.crm_mismatches == [] and report.secrets.hits == []
    assert report.short_password_dealer and report.secrets.short_secrets == 1
    assert report.needs_review >= 1  # the ambiguous submits, each in the ledger once
    assert report.passed, report.problems
    assert json.loads((tmp_path / "soak" / "report.json").read_text())["kills"] == report.kills
