"""Five nightly runs per OEM with SUBMISSIONS_CRM=salesforce against the local Salesforce org
and the sandbox portals, judged by the release gate (the numbers in the README come from here).

    PYTHONPATH=. .venv/bin/python scripts/salesforce_release_gate.py [--runs 5] [--cases 6]

Each run gets new cases entered in the org (as dealer staff would: some invalid), runs the real
nightly job (Chromium, a persistent Dagster instance under a temp folder, SQLite), then reads the
run's verdict, the gate's count and what was written to the org. Exit status 0 when every OEM's
gate passed with no duplicate submission and no outcome left unwritten.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sandbox import SandboxServer
from sandbox.salesforce import SalesforceServer
from sandbox.salesforce.desk import CaseDesk
from submissions_pipeline.assets.crm_updates import release_verdict
from submissions_pipeline.checks.release_gate import (
    REQUIRED_CLEAN_RUNS,
    consecutive_clean,
    gate_history,
)
from submissions_pipeline.crm import CrmStatus
from submissions_pipeline.crm.salesforce_mapping import SalesforceMapping
from submissions_pipeline.crm.seed import build_demo_cases
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.demo import write_sandbox_credentials
from submissions_pipeline.launcher import launch_nightly, nightly_job, persistent_instance
from submissions_pipeline.resource_sets import resource_set
from submissions_pipeline.settings import Settings
from submissions_pipeline.store import JobStore

OEMS = ["northwind", "aurora", "kestrel"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=REQUIRED_CLEAN_RUNS)
    parser.add_argument("--cases", type=int, default=6, help="Cases entered per OEM per run.")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="sf-gate-"))
    mapping = SalesforceMapping.load()
    rows, ok = [], True
    with SandboxServer(oems=OEMS) as portals, SalesforceServer(folder=home / "sf") as org:
        creds = write_sandbox_credentials(home / "credentials.json", OEMS)
        settings = Settings(
            home=home,
            crm="salesforce",
            salesforce_token_url=org.token_url,
            salesforce_client_id="sandbox-connected-app",
            salesforce_username="integration@sandbox.example",
            salesforce_private_key=org.private_key_pem.decode(),
            salesforce_ca_file=org.ca_file,
            context_cap=2,
        )
        resources = resource_set(settings, portal_urls=portals.urls, credentials_file=str(creds))
        job = nightly_job(build_definitions(resources))
        crm = resources["crm"].get_client()
        desk = CaseDesk(org.org, mapping.case_fields, mapping.picklist(CrmStatus.NEW))
        store = JobStore.from_url(settings.database_url)
        with persistent_instance(home / "dagster", browser_slots=2) as instance:
            for n in range(1, args.runs + 1):
                for oem in OEMS:
                    for case in build_demo_cases(oem, args.cases, n, datetime.now(UTC).date()):
                        desk.add_case({**case.raw, "case_id": f"{case.raw['case_id']}-R{n}"})
                    org.org.advance(2)  # intake reads only seconds the org has finished
                    writes_before, calls_before = len(org.ledger()), org.org.api_calls
                    started = time.monotonic()
                    run = launch_nightly(
                        job, oem, instance, store=store, trigger="gate", log_level="WARNING"
                    )
                    verdict, jobs = release_verdict(store, oem, run.run_id)
                    count, _ = consecutive_clean(gate_history(instance, oem))
                    rows.append(
                        {
                            "run": n,
                            "oem": oem,
                            "success": run.success,
                            "verdict": verdict,
                            "jobs": jobs,
                            "seconds": round(time.monotonic() - started, 1),
                            "org_writes": len(org.ledger()) - writes_before,
                            "api_calls": org.org.api_calls - calls_before,
                            "gate": f"{count}/{REQUIRED_CLEAN_RUNS}",
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
        for oem in OEMS:
            duplicates = portals.duplicates(oem)
            cases = crm.list_cases(oem=oem)
            submitted = [c for c in cases if c.status is CrmStatus.SUBMITTED]
            unwritten = [j for j in store.list_jobs(oem=oem) if j.state.value != "crm_updated"]
            last = next(r for r in reversed(rows) if r["oem"] == oem)
            count = int(last["gate"].split("/")[0])
            summary = {
                "oem": oem,
                "gate": f"{count}/{REQUIRED_CLEAN_RUNS}",
                "portal_submissions": len(portals.ledger(oem)),
                "duplicates": len(duplicates),
                "cases": len(cases),
                "submitted": len(submitted),
                "invalid_data": sum(c.status is CrmStatus.INVALID_DATA for c in cases),
                "jobs_not_crm_updated": len(unwritten),
            }
            print(json.dumps(summary), flush=True)
            ok = ok and count >= REQUIRED_CLEAN_RUNS and not duplicates and not unwritten
        print(json.dumps({"org_writes_total": len(org.ledger()), "logins": org.org.logins}))
        store.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
