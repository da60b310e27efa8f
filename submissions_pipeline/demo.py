"""The demo behind `make run` and `make ui`: the nightly job for every sandbox OEM, in-process.

`run_nightly()` is what `make run` calls. It starts the sandbox portals on free loopback ports,
writes the sandbox dealer accounts to a private credentials file, seeds the embedded CRM when it
is empty, and materializes crm_cases -> submission_runs -> evidence_bundles -> crm_updates (with
every check) for each sandbox-backed OEM on a persistent Dagster instance under var/dagster, so
`make ui` shows the same runs afterwards. Then it builds the cross-OEM report and prints a
summary. It drives the sandbox, so it imports `sandbox`, inside the functions that start it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import build_resources
from pydantic import BaseModel, Field

from submissions_pipeline.assets.partitions import REPORT_JOB_NAME
from submissions_pipeline.crm import CrmClient, CrmStatus, EmbeddedCrm, seed_demo_cases
from submissions_pipeline.definitions import build_definitions
from submissions_pipeline.domain import SubmissionState
from submissions_pipeline.launcher import (
    launch_nightly,
    nightly_job,
    persistent_instance,
    prepare_instance_home,
    run_config,
)
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.resource_sets import resource_set
from submissions_pipeline.runner.config import browser_label, default_chromium
from submissions_pipeline.settings import (
    PROJECT_ROOT,
    Settings,
    exported_environment,
    load_settings,
)
from submissions_pipeline.store import JobStore

S = SubmissionState

#: Chromium processes the demo runs at once (the `browser` pool's size): one per core, at
#: least two.
DEFAULT_BROWSER_SLOTS = max(2, os.cpu_count() or 2)


class SubmittedCase(BaseModel):
    """One case the automation submitted, as the CRM now shows it."""

    oem: str
    case_id: str
    reference: str | None
    evidence_url: str | None


class NightlySummary(BaseModel):
    """What `make run` did: per-OEM runs, CRM outcomes, failures, and where the proof is."""

    oems: list[str]
    runs: dict[str, str] = Field(description="OEM -> 'SUCCESS run <id>' or 'FAILURE run <id>'.")
    cases_by_status: dict[str, int]
    submitted: list[SubmittedCase]
    failures_by_reason: dict[str, int]
    retries_pending: int
    evidence_location: str
    dagster_home: str
    portal_urls: dict[str, str]
    browser: str = Field("", description="The browser binary the workers launched.")
    where: str = Field("the embedded default", description="Which portals and CRM were used.")

    @property
    def ok(self) -> bool:
        """Whether every OEM's run succeeded (the CLI's exit status)."""
        return all(outcome.startswith("SUCCESS") for outcome in self.runs.values())

    @property
    def cases(self) -> int:
        """Cases in the CRM for these OEMs."""
        return sum(self.cases_by_status.values())

    def render(self, show: int = 10) -> str:
        """The summary as people read it."""
        lines = [f"Nightly submissions on {self.where} for {', '.join(self.oems)}"]
        if self.browser:
            lines.append(f"Browser: {self.browser}")
        lines += [f"  {oem:<10} {outcome}" for oem, outcome in self.runs.items()]
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.cases_by_status.items()))
        lines.append(f"Cases in the CRM: {self.cases} ({statuses})")
        lines.append(f"Submitted with references: {len(self.submitted)}")
        for s in self.submitted[:show]:
            lines.append(f"  {s.oem:<10} {s.case_id:<14} {s.reference or '-':<22} {s.evidence_url}")
        if len(self.submitted) > show:
            lines.append(f"  … and {len(self.submitted) - show} more")
        failures = ", ".join(f"{k} {v}" for k, v in sorted(self.failures_by_reason.items()))
        lines.append(f"Failures by reason code: {failures or 'none'}")
        if self.retries_pending:
            lines.append(
                f"Retries pending: {self.retries_pending} (they come due in minutes; the "
                "retries sensor launches them under `make ui`, or run `make run` again)"
            )
        lines.append(
            f"Evidence: {self.evidence_location} (one folder per job; bundle.json verifies it)"
        )
        lines.append(f"Dagster runs and checks: DAGSTER_HOME={self.dagster_home} (`make ui`)")
        return "\n".join(lines)


def write_sandbox_credentials(path: Path, oems: Sequence[str]) -> Path:
    """Write every sandbox dealer account of `oems` as the JSON the credentials resource reads.

    The file is created 0600 and its content never goes to a log.
    """
    from sandbox.accounts import credentials_document  # the demo path may import sandbox

    doc = credentials_document(list(oems))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(doc, out)
    os.chmod(path, 0o600)
    return path


@dataclass
class DemoEnvironment:
    """What the demo started: sandbox portal URLs and the credentials file for them."""

    settings: Settings
    portal_urls: dict[str, str]
    credentials_file: Path
    dagster_home: Path
    seeded: int
    #: The running sandbox (its knobs and ledgers), for the scheduler soak and tests.
    sandbox: Any = None


def sandbox_oems(oems: Sequence[str] | None = None) -> list[str]:
    """The OEMs the demo may drive: the sandbox-backed ones (all of them by default)."""
    known = oem_registry().sandbox_oem_keys()
    selected = list(oems or known)
    unknown = sorted(set(selected) - set(known))
    if unknown:
        raise ValueError(f"not sandbox-backed OEM(s) {unknown}; the demo drives {known}")
    return selected


@contextlib.contextmanager
def demo_environment(
    oems: Sequence[str] | None = None,
    *,
    per_oem: int = 20,
    sandbox_knobs: Mapping[str, Any] | None = None,
) -> Iterator[DemoEnvironment]:
    """Sandbox portals on free ports, their dealer accounts, a seeded CRM, a Dagster home.

    Also exports SUBMISSIONS_PORTAL_URLS, SUBMISSIONS_CREDENTIALS_FILE and DAGSTER_HOME, so a
    `dagster dev` started inside the block (make ui) sees the same portals and accounts.
    """
    from sandbox import SandboxServer

    settings = load_settings()
    oems = sandbox_oems(oems)
    dagster_home = prepare_instance_home(settings.dagster_instance_dir)
    creds = write_sandbox_credentials(settings.home / "sandbox-credentials.json", oems)
    crm = EmbeddedCrm.from_url(settings.database_url)  # migrates the project database
    try:
        seeded = 0
        if not crm.list_cases():
            seeded = seed_demo_cases(crm, oems=oems, per_oem=per_oem).added
    finally:
        crm.dispose()
    with SandboxServer(oems=oems, knobs=sandbox_knobs) as server:
        exported = {
            "SUBMISSIONS_PORTAL_URLS": json.dumps(server.urls),
            "SUBMISSIONS_CREDENTIALS_FILE": str(creds),
            "DAGSTER_HOME": str(dagster_home),
        }
        with exported_environment(exported):
            yield DemoEnvironment(load_settings(), server.urls, creds, dagster_home, seeded, server)


def summarize(
    settings: Settings,
    oems: Sequence[str],
    runs: dict[str, str],
    evidence_location: str,
    dagster_home: Path,
    portal_urls: Mapping[str, str],
    crm: CrmClient | None = None,
) -> NightlySummary:
    """Read the outcome back from the CRM (the embedded one unless `crm` is given) and the job
    store."""
    store = JobStore.from_url(settings.database_url, migrate_schema=False)
    own_crm = crm is None
    crm = crm or EmbeddedCrm.from_url(settings.database_url, migrate_schema=False)
    try:
        cases = [c for oem in oems for c in crm.list_cases(oem=oem)]
        jobs = [j for j in store.list_jobs() if j.oem in oems]
    finally:
        if own_crm and isinstance(crm, EmbeddedCrm):
            crm.dispose()
        store.dispose()
    by_status = Counter(c.status.value for c in cases)
    submitted = [
        SubmittedCase(
            oem=c.oem, case_id=c.case_id, reference=c.reference, evidence_url=c.evidence_url
        )
        for c in cases
        if c.status is CrmStatus.SUBMITTED and c.submitted_by_automation
    ]
    failures = Counter(
        c.failure.reason_code.value
        for c in cases
        if c.failure is not None and c.status is not CrmStatus.SUBMITTED
    )
    pending = sum(j.state in (S.RETRY_SCHEDULED, S.NEEDS_RECONCILIATION, S.QUEUED) for j in jobs)
    return NightlySummary(
        oems=list(oems),
        runs=runs,
        cases_by_status=dict(by_status),
        submitted=submitted,
        failures_by_reason=dict(failures),
        retries_pending=pending,
        evidence_location=evidence_location,
        dagster_home=str(dagster_home),
        portal_urls=dict(portal_urls),
        browser=browser_label(settings.chromium or default_chromium()),
    )


def run_nightly(
    oems: Sequence[str] | None = None,
    *,
    per_oem: int = 20,
    browser_slots: int = DEFAULT_BROWSER_SLOTS,
    sandbox_knobs: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] | None = print,
) -> NightlySummary:
    """Run the nightly job for every OEM (or `oems`) in-process and print a summary.

    Each OEM is one Dagster run of `submissions_nightly` for its partition, on the persistent
    instance under DAGSTER_HOME (default var/dagster), with the browser pool set to
    `browser_slots`. A run that fails has its leased jobs dead-lettered and an alert recorded,
    as the run-failure sensor does under the daemon. Returns the summary (also printed through
    `echo` unless it is None).
    """
    selected = sandbox_oems(oems)
    with (
        demo_environment(selected, per_oem=per_oem, sandbox_knobs=sandbox_knobs) as demo,
        persistent_instance(demo.dagster_home, browser_slots=browser_slots) as instance,
    ):
        resources = resource_set(
            demo.settings,
            portal_urls=demo.portal_urls,
            credentials_file=str(demo.credentials_file),
        )
        summary = _run_partitions(
            demo.settings, resources, instance, selected, demo.dagster_home, "make_run", echo
        )
    if echo:
        echo(summary.render())
    return summary


def _run_partitions(
    settings: Settings,
    resources: dict[str, Any],
    instance: Any,
    oems: Sequence[str],
    dagster_home: Path,
    trigger: str,
    echo: Callable[[str], None] | None,
    where: str = "the embedded default",
) -> NightlySummary:
    """One nightly run per OEM, then the daily report, then the summary read back."""
    defs = build_definitions(resources)
    job = nightly_job(defs)
    urls = resources["portals"].urls
    runs: dict[str, str] = {}
    store = JobStore.from_url(settings.database_url, migrate_schema=False)
    try:
        for oem in oems:
            if echo:
                echo(f"{oem}: running the nightly job against {urls[oem]} …")
            runs[oem] = str(launch_nightly(job, oem, instance, store=store, trigger=trigger))
    finally:
        store.dispose()
    defs.resolve_job_def(REPORT_JOB_NAME).execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config()
    )
    with build_resources({"crm": resources["crm"]}) as built:  # EnvVar values resolved
        return summarize(
            settings,
            oems,
            runs,
            resources["artifacts"].location(),
            dagster_home,
            urls,
            crm=built.crm.get_client(),
        ).model_copy(update={"where": where})


def run_configured(
    oems: Sequence[str],
    *,
    browser_slots: int = DEFAULT_BROWSER_SLOTS,
    echo: Callable[[str], None] | None = print,
) -> NightlySummary:
    """`submissions run --oem X` against real portals: the addresses and dealer accounts the
    environment configures (SUBMISSIONS_PORTAL_URLS, SUBMISSIONS_CREDENTIALS[_FILE]), the cases
    already in the configured CRM (`submissions cases add|import` fills the embedded one), no
    sandbox and no demo seeding. Raises ValueError naming what is missing."""
    settings = load_settings()
    urls = settings.portal_urls or {}
    registered = set(oem_registry().oem_keys())
    problems = [f"{o}: no adapter is registered" for o in oems if o not in registered]
    problems += [f"{o}: SUBMISSIONS_PORTAL_URLS has no address" for o in oems if o not in urls]
    if settings.credentials is None and settings.credentials_file is None:
        problems.append("set SUBMISSIONS_CREDENTIALS_FILE (or SUBMISSIONS_CREDENTIALS)")
    if not oems or problems:
        raise ValueError("; ".join(problems) or "name the OEM(s) to run with --oem")
    dagster_home = prepare_instance_home(settings.dagster_instance_dir)
    with persistent_instance(dagster_home, browser_slots=browser_slots) as instance:
        summary = _run_partitions(
            settings,
            resource_set(settings),
            instance,
            oems,
            dagster_home,
            "run_oem",
            echo,
            where=f"the configured portals and the {settings.crm} CRM",
        )
    if echo:
        echo(summary.render())
    return summary


def serve_ui(
    port: int = 3000,
    oems: Sequence[str] | None = None,
    *,
    browser_slots: int = DEFAULT_BROWSER_SLOTS,
    echo: Callable[[str], None] = print,
) -> int:
    """`make ui`: the sandbox portals, a seeded CRM and `dagster dev` on `port`, until Ctrl-C.

    `dagster dev` runs as a child with default signal handling in its own process group (a
    backgrounded `dagster dev` otherwise ignores SIGTERM and leaves its webserver, daemon and
    code server behind); stopping this function stops exactly that group. Returns its exit
    code.
    """
    with (
        demo_environment(oems) as demo,
        persistent_instance(demo.dagster_home, browser_slots=browser_slots),
    ):
        dagster = Path(sys.executable).parent / "dagster"

        def _default_signals() -> None:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-p", str(port)],
            cwd=PROJECT_ROOT,
            preexec_fn=_default_signals,
            start_new_session=True,
        )
        echo(f"Dagster UI: http://127.0.0.1:{port}  (DAGSTER_HOME={demo.dagster_home})")
        for oem, url in demo.portal_urls.items():
            echo(f"  sandbox {oem:<10} {url}/")
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            return _stop_group(proc)
        finally:
            signal.signal(signal.SIGTERM, previous)
            if proc.poll() is None:
                _stop_group(proc)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _stop_group(proc: subprocess.Popen[bytes]) -> int:
    """Stop the process group this module started for `dagster dev`, by its id."""
    for sig, wait_s in ((signal.SIGINT, 15), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()
