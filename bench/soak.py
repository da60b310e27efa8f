"""The soak: N jobs through the real pipeline against faulty sandbox portals, judged by its bar.

The bar: about 1,000 jobs, terminal fail rate < 3 %, p95 job time < 5 min, workers that die
lose no history, humans see only terminal failures. This drives the Dagster nightly
job (crm_cases → submission_runs → evidence_bundles → crm_updates) per OEM partition in rounds
until every case is settled, with 5xx, latency, pop-ups, dropped confirmations and a few invalid
cases switched on, and retry delays scaled down so it finishes in minutes. One portal's lookup
lags, a few case ids have a whitespace twin or are entered twice, and one dealer has a
5-character password. It then checks the outcome against the job store, the CRM, the portals'
ledgers and every stored artifact (bench/soak_checks.py).
"""

from __future__ import annotations

import json
import shutil
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bench.soak_checks import (
    SecretScan,
    check_ledgers,
    find_stuck,
    portal_ledgers,
    scan_for_secrets,
    secret_values,
)

#: Portal knobs of the soak: the failure modes of real portals at rates a bad night might show.
DEFAULT_FAULTS: dict[str, Any] = {
    "error_rate": 0.02,
    "latency_ms": 20,
    "search_latency_s": 0.3,
    "popup_rate": 0.1,
    "drop_after_submit_rate": 0.02,
    "garbage_rate": 0.005,
    "seed": 7,
}


class LaggingPortal(BaseModel):
    """One portal whose lookup trails its records, and ambiguous submits on it.

    The sandbox lag is in real seconds and is not scaled; the OEM's reconciliation window is (it
    is the policy's `search_lag_s` times the retry time scale). Under the default policy
    (`lookups`, 300 s) the soak's window is 300 s x 0.005 = 1.5 s, so a lookup lagging longer
    than that would let two misses "prove" a submitted case absent and the job would submit it
    again: a duplicate. An OEM whose search lags that far must not trust a miss, so the soak
    gives it `proof = "never"` (in a copy of the adapters folder in its home) and a lag longer
    than any round (3,600 s: an index rebuilt hourly), so every lookup after an ambiguous submit
    misses, the job goes to `needs_review`, and the ledger still holds the case once.
    """

    oem: str = "kestrel"
    search_lag_s: float = Field(3600.0, ge=0, description="The portal's lookup lag (real s).")
    drop_after_submit_rate: float = Field(
        0.02, ge=0, le=1, description="This portal's ambiguous submits (recorded, then a 504)."
    )
    reconciliation: dict[str, Any] = Field(
        default_factory=lambda: {"proof": "never"},
        description="The OEM's [reconciliation] policy for the soak (see domain/reconciliation).",
    )


class SoakConfig(BaseModel):
    """How big and how hostile the soak is."""

    jobs: int = Field(1000, ge=1, description="Cases fed to the CRM (valid and invalid).")
    oems: list[str] | None = Field(None, description="OEMs to spread them over (all).")
    invalid_share: float = Field(0.02, ge=0, le=1, description="Cases with a human mistake.")
    faults: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_FAULTS))
    retry_time_scale: float = Field(
        0.005, gt=0, description="Multiplies retry delays (4-12 min become 1.2-3.6 s)."
    )
    context_cap: int = Field(3, ge=1, description="Contexts per worker.")
    workers: int = Field(1, ge=1, description="Worker ops (one Chromium each) per run.")
    max_rounds: int = Field(12, ge=1, description="Nightly runs per OEM at most.")
    time_limit_s: float = Field(3 * 3600, gt=0)
    lagging_portal: LaggingPortal | None = Field(default_factory=LaggingPortal)
    id_twins: int = Field(
        3,
        ge=0,
        description="Cases given a twin whose id differs only by surrounding whitespace, and as "
        "many cases entered a second time with the same id and other content.",
    )
    short_password: str | None = Field(
        "Kw7pZ", description="A password under the redactor's long-secret length, for one dealer."
    )
    short_password_oem: str = "northwind"
    seed: int = 7
    out_dir: Path = Field(default_factory=lambda: Path("var/soak"))


class SoakCriteria(BaseModel):
    """The pass/fail lines: what lets a new portal or a new release go to production."""

    max_fail_rate: float = 0.03
    max_p95_job_s: float = 300.0


class SoakReport(BaseModel):
    """What the soak measured, and whether it passed."""

    config: SoakConfig
    started_at: datetime
    short_password_dealer: str | None = Field(None, description="oem/dealer given it.")
    wall_s: float
    rounds: int
    dagster_runs: int
    failed_runs: int
    cases: int
    invalid_cases: int
    jobs: int
    states: dict[str, int]
    terminal_fail_rate: float
    p50_job_s: float | None
    p95_job_s: float | None
    p95_end_to_end_s: float | None
    jobs_per_hour: float
    retries: int
    dead_letters: int
    reconciliations: int
    reconciled_from_lookup: int
    failures_by_reason: dict[str, int]
    duplicates: int = Field(description="Cases a portal received more than once.")
    duplicate_cases: list[str]
    wrong_submissions: list[str] = Field(
        description="Ledger entries whose case the CRM lacks or whose VIN is not its case's."
    )
    stuck: list[str] = Field(description="CRM cases no run read, and jobs due that no run serves.")
    orphans: int
    unsettled: int
    needs_review: int = Field(description="Jobs waiting for a person: reported, not a failure.")
    needs_review_ids: list[str]
    crm_mismatches: list[str]
    secrets: SecretScan
    passed: bool
    problems: list[str]

    def render(self) -> str:
        """The console summary."""
        lines = [
            f"soak: {self.jobs} jobs ({self.cases} cases, {self.invalid_cases} invalid) in "
            f"{self.wall_s / 60:.1f} min, {self.rounds} round(s), {self.dagster_runs} Dagster "
            f"runs ({self.failed_runs} failed)",
            f"  terminal fail rate   {self.terminal_fail_rate:.2%}  (limit 3 %)",
            f"  p95 job time         {_fmt_s(self.p95_job_s)}  (limit 5 min); p50 "
            f"{_fmt_s(self.p50_job_s)}; p95 end to end {_fmt_s(self.p95_end_to_end_s)}",
            f"  throughput           {self.jobs_per_hour:.0f} jobs/hour",
            f"  retries {self.retries} · dead letters {self.dead_letters} · reconciliations "
            f"{self.reconciliations} ({self.reconciled_from_lookup} proven by lookup) · unsettled "
            f"{self.unsettled} · needs review {self.needs_review} (a person decides; not a "
            "failure)",
            f"  duplicates (ledger)  {self.duplicates} · wrong submissions "
            f"{len(self.wrong_submissions)} · stuck {len(self.stuck)} · orphans {self.orphans} · "
            f"CRM mismatches {len(self.crm_mismatches)}",
            f"  secrets              {len(self.secrets.hits)} in {self.secrets.files_scanned} "
            f"artifacts ({self.secrets.secrets_checked} secrets, {self.secrets.short_secrets} "
            "short)",
            f"  final states         {json.dumps(self.states)}",
            f"  failures by reason   {json.dumps(self.failures_by_reason)}",
            "PASSED" if self.passed else "FAILED: " + "; ".join(self.problems),
        ]
        return "\n".join(lines)


def _fmt_s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} s"


def _percentile(values: list[float], q: float) -> float | None:
    from submissions_pipeline.domain.stats import percentile

    return percentile(values, q)


def seed_soak_cases(db_url: str, cfg: SoakConfig, oems: list[str]) -> tuple[int, int]:
    """Feed the CRM `cfg.jobs` cases spread over the OEMs, then the id twins; returns (cases,
    invalid).

    Each twin (`" ID"` or `"ID "`) and each second entry of an id carries another case's
    content (another VIN), so if the pipeline ever merged a twin into its case or submitted a
    replaced revision, the ledger check would see a VIN that is not the case's. A twin comes
    back as invalid data (an id is used exactly as filed); a second entry replaces the first
    before any run reads it, so the portal must receive the new content.
    """
    from itertools import chain, zip_longest

    from submissions_pipeline.crm import EmbeddedCrm
    from submissions_pipeline.crm.seed import build_bulk_cases

    crm = EmbeddedCrm.from_url(db_url)
    cases = invalid = 0
    today = date.today()
    try:
        per = {
            oem: cfg.jobs // len(oems) + (i < cfg.jobs % len(oems)) for i, oem in enumerate(oems)
        }
        valid: dict[str, list[str]] = {}
        for oem, count in per.items():
            for case in build_bulk_cases(oem, count, cfg.seed, today, cfg.invalid_share):
                crm.add_case(case.raw)
                cases += 1
                invalid += case.invalid_field is not None
                if case.invalid_field is None:
                    valid.setdefault(oem, []).append(case.raw["case_id"])
        # Other content under the same ids: the same generator with another seed.
        other = {
            c.raw["case_id"]: c.raw
            for oem, count in per.items()
            for c in build_bulk_cases(oem, count, cfg.seed + 1, today, 0.0)
        }
        spread = [i for i in chain(*zip_longest(*valid.values())) if i is not None]
        for n, case_id in enumerate(spread[: cfg.id_twins]):
            crm.add_case({**other[case_id], "case_id": f" {case_id}" if n % 2 else f"{case_id} "})
            cases += 1
            invalid += 1
        for case_id in spread[cfg.id_twins : 2 * cfg.id_twins]:
            crm.add_case(other[case_id])
    finally:
        crm.dispose()
    return cases, invalid


def _busiest_dealer(db_url: str, oem: str) -> str | None:
    """The dealer with the most of `oem`'s cases, so a password given to it is used often."""
    from sandbox.accounts import DEALERS
    from submissions_pipeline.crm import EmbeddedCrm

    crm = EmbeddedCrm.from_url(db_url, migrate_schema=False)
    try:
        dealers = Counter(c.raw.get("dealer_id") for c in crm.list_cases(oem=oem))
    finally:
        crm.dispose()
    return next((d for d, _ in dealers.most_common() if d in DEALERS), None)


def _lagging_adapters(cfg: SoakConfig, home: Path) -> dict[str, str]:
    """A copy of the adapters folder in the soak's home with the lagging OEM's reconciliation
    policy, as the environment that points the pipeline at it (nothing when no portal lags)."""
    from submissions_pipeline.settings import load_settings

    lag = cfg.lagging_portal
    if lag is None:
        return {}
    folder = home / "adapters"
    shutil.copytree(load_settings().adapters_dir, folder)
    toml = folder / lag.oem / "oem.toml"
    if "reconciliation" in tomllib.loads(toml.read_text()):
        raise ValueError(
            f"{lag.oem}'s oem.toml has its own [reconciliation]; drop it from the soak"
        )
    policy = "".join(f"{k} = {json.dumps(v)}\n" for k, v in lag.reconciliation.items())
    toml.write_text(toml.read_text() + "\n[reconciliation]\n" + policy)
    return {"SUBMISSIONS_ADAPTERS_DIR": str(folder)}


def run_soak(cfg: SoakConfig, echo: Callable[[str], None] = print) -> SoakReport:
    """Run the soak in a fresh home under `cfg.out_dir` and write report.json and chart.png."""
    from sandbox.accounts import password_overrides
    from submissions_pipeline.demo import demo_environment, sandbox_oems
    from submissions_pipeline.launcher import launch_nightly, persistent_instance
    from submissions_pipeline.settings import exported_environment, load_settings
    from submissions_pipeline.store import JobStore

    oems = sandbox_oems(cfg.oems)
    home = (cfg.out_dir / "home").resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    fresh_home = {"SUBMISSIONS_HOME": str(home), "SUBMISSIONS_DB_URL": None, "DAGSTER_HOME": None}
    lag = cfg.lagging_portal if cfg.lagging_portal and cfg.lagging_portal.oem in oems else None
    fresh_home |= _lagging_adapters(cfg.model_copy(update={"lagging_portal": lag}), home)
    with exported_environment(fresh_home):
        settings = load_settings()
        cases, invalid = seed_soak_cases(settings.database_url, cfg, oems)
        echo(f"soak: {cases} cases ({invalid} invalid) for {', '.join(oems)}; faults {cfg.faults}")
        dealer = None
        if cfg.short_password and cfg.short_password_oem in oems:
            dealer = _busiest_dealer(settings.database_url, cfg.short_password_oem)
        # The sandbox and the credentials file the runs read both take the override, as long as
        # the portals start and the file is written inside this block.
        short = {(cfg.short_password_oem, dealer): cfg.short_password} if dealer else {}
        echo(
            f"  lagging portal {lag and lag.model_dump()}; {cfg.id_twins} whitespace twin(s) and "
            f"{cfg.id_twins} re-entered id(s); short password for {cfg.short_password_oem}/{dealer}"
        )
        started = datetime.now(UTC)
        t0 = time.monotonic()
        runs = failed_runs = rounds = 0
        plan = {
            "max_jobs": 100_000,
            "workers": cfg.workers,
            "context_cap": cfg.context_cap,
            "jobs_per_worker": 25,
        }
        with (
            password_overrides(short),
            demo_environment(oems, sandbox_knobs=cfg.faults) as demo,
            persistent_instance(demo.dagster_home, browser_slots=cfg.workers) as instance,
        ):
            if lag is not None:
                demo.sandbox.configure(
                    lag.oem,
                    search_lag_s=lag.search_lag_s,
                    drop_after_submit_rate=lag.drop_after_submit_rate,
                )
            job = soak_nightly_job(settings, demo, settings.database_url, cfg.retry_time_scale)
            store = JobStore.from_url(settings.database_url, migrate_schema=False)
            while rounds < cfg.max_rounds and time.monotonic() - t0 < cfg.time_limit_s:
                rounds += 1
                store.reap_expired(actor="soak:reaper")
                for oem in oems:
                    run = launch_nightly(job, oem, instance, store=store, trigger="soak", plan=plan)
                    runs += 1
                    failed_runs += not run.success
                settled, wait_s = _settled(store)
                states = Counter(j.state.value for j in store.list_jobs())
                elapsed_min = (time.monotonic() - t0) / 60
                echo(f"  round {rounds}: {json.dumps(states)} after {elapsed_min:.1f} min")
                if settled:
                    break
                if wait_s > 0:
                    time.sleep(min(wait_s, 60))
            ledgers = portal_ledgers(demo.portal_urls)
            report = _report(
                cfg,
                settings,
                store,
                started,
                time.monotonic() - t0,
                rounds,
                runs,
                failed_runs,
                cases,
                invalid,
                ledgers,
            )
            store.dispose()
    report.short_password_dealer = f"{cfg.short_password_oem}/{dealer}" if dealer else None
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "report.json").write_text(report.model_dump_json(indent=2))
    _chart(f"sqlite:///{home / 'submissions.db'}", cfg.out_dir / "chart.png")
    echo(report.render())
    echo(f"report: {cfg.out_dir / 'report.json'} · chart: {cfg.out_dir / 'chart.png'}")
    return report


def soak_nightly_job(settings: Any, demo: Any, db_url: str, retry_time_scale: float) -> Any:
    """The nightly job over the demo's portals, its store's retry delays scaled so that a soak
    sees every retry within minutes."""
    from submissions_pipeline.definitions import build_definitions
    from submissions_pipeline.launcher import nightly_job
    from submissions_pipeline.resource_sets import resource_set
    from submissions_pipeline.resources import JobStoreResource

    resources = resource_set(
        settings,
        portal_urls=demo.portal_urls,
        credentials_file=str(demo.credentials_file),
    )
    resources["job_store"] = JobStoreResource(db_url=db_url, retry_time_scale=retry_time_scale)
    return nightly_job(build_definitions(resources))


def _settled(store: Any) -> tuple[bool, float]:
    """Whether the automation is done with every job (terminal, or waiting for a person), and
    how long until the next one is due."""
    from submissions_pipeline.domain import HUMAN_STATES, TERMINAL_STATES

    pending = [j for j in store.list_jobs() if j.state not in TERMINAL_STATES | HUMAN_STATES]
    if not pending:
        return True, 0.0
    now = datetime.now(UTC)
    due = [j.next_attempt_at for j in pending if j.next_attempt_at is not None]
    wait = min(((d - now).total_seconds() for d in due), default=0.0)
    return False, max(0.0, wait)


def _report(
    cfg: SoakConfig,
    settings: Any,
    store: Any,
    started: datetime,
    wall_s: float,
    rounds: int,
    runs: int,
    failed_runs: int,
    cases: int,
    invalid: int,
    ledgers: dict[str, list[dict[str, Any]]],
) -> SoakReport:
    """Judge the soak: the job store, the CRM, the portals' `ledgers` and every artifact."""
    from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
    from submissions_pipeline.domain import HUMAN_STATES, TERMINAL_STATES
    from submissions_pipeline.domain import SubmissionState as S

    store.reap_expired(actor="soak:reaper")
    jobs = store.list_jobs()
    events = store.events()
    states = Counter(j.state.value for j in jobs)
    failed = sum(j.state in (S.FAILED_TERMINAL, S.DEAD_LETTERED) for j in jobs)
    durations = [j.duration_s for j in jobs if j.duration_s is not None]
    e2e = [
        (j.finished_at - j.created_at).total_seconds() for j in jobs if j.finished_at is not None
    ]
    transitions = [e for e in events if e.kind == "transition"]
    # Orphans: held by nobody alive (the reaper just ran) or proven but never sent to the CRM.
    orphans = sum(j.state in (S.RUNNING, S.SUBMITTED, S.EVIDENCE_STORED) for j in jobs)
    # A job waiting for a person (needs_review) is settled as far as automation goes: reported,
    # never a failure. Unsettled are the jobs automation still owes a move.
    unsettled = sum(j.state not in TERMINAL_STATES | HUMAN_STATES for j in jobs)
    review_ids = sorted(j.job_id for j in jobs if j.state is S.NEEDS_REVIEW)

    crm = EmbeddedCrm.from_url(settings.database_url, migrate_schema=False)
    mismatches: list[str] = []
    try:
        crm_cases = crm.list_cases()
        by_case = {c.case_id: c for c in crm_cases}
        for j in jobs:
            c = by_case.get(j.case_id)
            if j.state is S.CRM_UPDATED and (
                c is None
                or c.status is not CrmStatus.SUBMITTED
                or c.reference != j.reference
                or not c.submitted_by_automation
            ):
                mismatches.append(
                    f"{j.case_id}: job {j.state} ref {j.reference}, CRM {c and c.status}"
                )
            if j.state in (S.FAILED_TERMINAL, S.DEAD_LETTERED) and (
                c is None or c.status is CrmStatus.SUBMITTED or j.crm_synced_at is None
            ):
                mismatches.append(f"{j.case_id}: terminal failure not posted to the CRM")
        invalid_in_crm = sum(c.status is CrmStatus.INVALID_DATA for c in by_case.values())
    finally:
        crm.dispose()

    ledger = check_ledgers(ledgers, crm_cases)
    stuck = find_stuck(crm_cases, jobs, served=ledgers)
    # The whole home: evidence, the job store and CRM (SQLite), Dagster's event log and compute
    # logs, the workers' logs; only the credentials file itself holds the secrets.
    credentials_file = settings.home / "sandbox-credentials.json"
    secrets = scan_for_secrets(
        settings.home, secret_values(credentials_file), exclude=frozenset({credentials_file})
    )
    fail_rate = failed / len(jobs) if jobs else 0.0
    p95 = _percentile(durations, 95)
    criteria = SoakCriteria()
    problems = []
    if fail_rate >= criteria.max_fail_rate:
        problems.append(f"fail rate {fail_rate:.2%} >= 3 %")
    if p95 is None or p95 >= criteria.max_p95_job_s:
        problems.append(f"p95 job time {_fmt_s(p95)} >= 5 min")
    if ledger.duplicates:
        problems.append(f"{len(ledger.duplicates)} case(s) submitted twice")
    if ledger.wrong_submissions:
        problems.append(f"{len(ledger.wrong_submissions)} wrong submission(s)")
    if stuck:
        problems.append(f"{len(stuck)} stuck case(s) or job(s)")
    if orphans:
        problems.append(f"{orphans} orphaned job(s)")
    if unsettled:
        problems.append(f"{unsettled} job(s) still waiting for a retry when the soak stopped")
    if mismatches:
        problems.append(f"{len(mismatches)} CRM mismatch(es)")
    if secrets.hits:
        problems.append(f"secrets found in {len(secrets.hits)} artifact(s)")
    if invalid_in_crm != invalid:
        problems.append(f"{invalid} invalid cases fed, {invalid_in_crm} returned as invalid")
    return SoakReport(
        config=cfg,
        started_at=started,
        wall_s=round(wall_s, 1),
        rounds=rounds,
        dagster_runs=runs,
        failed_runs=failed_runs,
        cases=cases,
        invalid_cases=invalid,
        jobs=len(jobs),
        states=dict(states),
        terminal_fail_rate=round(fail_rate, 4),
        p50_job_s=_percentile(durations, 50),
        p95_job_s=p95,
        p95_end_to_end_s=_percentile(e2e, 95),
        jobs_per_hour=round(len(jobs) / wall_s * 3600, 1) if wall_s else 0.0,
        retries=sum(e.to_state is S.RETRY_SCHEDULED for e in transitions),
        dead_letters=states.get(S.DEAD_LETTERED.value, 0),
        reconciliations=sum(e.to_state is S.NEEDS_RECONCILIATION for e in transitions),
        reconciled_from_lookup=sum(bool((j.evidence or {}).get("reconciled")) for j in jobs),
        failures_by_reason=dict(
            Counter(
                j.reason_code.value
                for j in jobs
                if j.reason_code and j.state in (S.FAILED_TERMINAL, S.DEAD_LETTERED)
            )
        ),
        duplicates=len(ledger.duplicates),
        duplicate_cases=ledger.duplicates[:50],
        wrong_submissions=ledger.wrong_submissions[:50],
        stuck=stuck[:50],
        orphans=orphans,
        unsettled=unsettled,
        needs_review=len(review_ids),
        needs_review_ids=review_ids,
        crm_mismatches=mismatches[:50],
        secrets=secrets.model_copy(update={"hits": secrets.hits[:50]}),
        passed=not problems,
        problems=problems,
    )


def _chart(db_url: str, out: Path) -> None:
    """Job time distribution and outcomes over time, from the soak's job store."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from submissions_pipeline.store import JobStore

    store = JobStore.from_url(db_url, migrate_schema=False)
    jobs = store.list_jobs()
    store.dispose()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    durations = [j.duration_s for j in jobs if j.duration_s is not None]
    left.hist(durations, bins=40, color="#2b6cb0")
    left.set_title("Job time (last attempt)")
    left.set_xlabel("seconds")
    left.set_ylabel("jobs")
    finished = sorted((j.finished_at, j.state.value) for j in jobs if j.finished_at)
    if finished:
        t0 = min(j.created_at for j in jobs)
        series: dict[str, list[tuple[float, int]]] = {}
        counts: Counter[str] = Counter()
        for at, state in finished:
            counts[state] += 1
            series.setdefault(state, []).append(((at - t0).total_seconds() / 60, counts[state]))
        for state, points in sorted(series.items()):
            xs, ys = zip(*points, strict=True)
            right.step(xs, ys, where="post", label=state)
        right.legend()
    right.set_title("Outcomes over time (cumulative)")
    right.set_xlabel("minutes since the first case")
    right.set_ylabel("jobs")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
