"""One OEM's nightly run in a process of its own, on a persistent instance: for tests that kill
or stop that process the way an operator or the kernel would.

    python -m submissions_pipeline_tests.nightly_child OEM PORTAL_URLS_JSON CREDENTIALS_FILE \\
        DAGSTER_HOME

The database and everything else come from the environment (SUBMISSIONS_*), as in production.
Exit status: 0 run succeeded, 1 run failed, 130 interrupted (SIGTERM or Ctrl-C).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.launcher import (
    RunInterrupted,
    launch_nightly,
    nightly_job,
    persistent_instance,
)
from submissions_pipeline.resource_sets import resource_set
from submissions_pipeline.settings import load_settings
from submissions_pipeline.store import JobStore


def main(argv: list[str]) -> int:
    oem, urls, credentials, home = argv
    settings = load_settings()
    resources = resource_set(settings, portal_urls=json.loads(urls), credentials_file=credentials)
    store = JobStore.from_url(settings.database_url)
    plan = {"workers": 1, "context_cap": 2}
    with persistent_instance(Path(home), browser_slots=1) as instance:
        try:
            run = launch_nightly(
                nightly_job(build_definitions(resources)),
                oem,
                instance,
                store=store,
                trigger="test",
                plan=plan,
                log_level="WARNING",
            )
        except RunInterrupted:
            return 130
    print(json.dumps({"run_id": run.run_id, "success": run.success}))
    return 0 if run.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
