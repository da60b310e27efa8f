"""The scheduler soak: the `make up` stack under the real Dagster daemon, accelerated, with chaos.

A day of the scheduler compressed into minutes: every OEM's nightly schedule fires every
`cron` (set in a copy of the OEMs' own settings files, not in code), the sensors run at an
accelerated cadence, new CRM cases arrive continuously, the sandbox portals misbehave, and the
run worker processes are SIGKILLed at random, the PostgreSQL connections are terminated once
and the daemon is restarted once. Afterwards the run monitor, the reaper and later runs must
have put everything right: no OEM ever had two runs at once, no job or lease is orphaned, no
browser slot is held by a dead run, every case settled, no portal got a case twice, the queue
never waited longer than twice the schedule interval, and every killed worker raised an alert.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field

from submissions_pipeline.settings import PROJECT_ROOT


class DaemonSoakConfig(BaseModel):
    """How long, how fast and how hostile."""

    minutes: float = Field(60, gt=0, description="How long cases arrive and chaos happens.")
    oems: list[str] | None = Field(None, description="The sandbox OEMs (None: all of them).")
    cases_per_minute: float = Field(6, gt=0, description="New CRM cases per minute, all OEMs.")
    cron: str = Field("*/2 * * * *", description="Every OEM's accelerated nightly schedule.")
    interval_s: int = Field(120, description="The schedule interval `cron` means, in seconds.")
    sensor_interval_s: int = Field(30, ge=5, description="Every sensor's accelerated cadence.")
    monitoring_poll_s: int = Field(10, ge=1, description="Run monitoring's poll interval.")
    retry_time_scale: float = Field(0.02, gt=0, description="2-10 min retries -> 2.4-12 s.")
    kills: int = Field(4, ge=0, description="Run workers SIGKILLed at random times.")
    settle_minutes: float = Field(
        15,
        ge=0,
        description="The most time allowed to settle afterwards (it ends when every case has). "
        "A case may need six or seven runs in a row (a 503, a submit whose outcome is unknown, "
        "lookups until absence is proven, a resubmit), each a whole run of a minute or more on "
        "a loaded machine: the retry delays are compressed, a run's start-up is not.",
    )
    browser_slots: int = 2
    error_rate: float = Field(0.03, ge=0, le=1, description="Sandbox 503 share per page.")
    popup_rate: float = Field(0.2, ge=0, le=1, description="Sandbox pop-up share per page.")
    seed: int = 17
    port: int = 3100
    database: str = "submissions_daemon_soak"
    keep_databases: bool = Field(True, description="Keep the databases for a post-mortem.")
    out_dir: Path = PROJECT_ROOT / "var" / "daemon-soak"


class DaemonSoakReport(BaseModel):
    """What the soak saw; `passed` applies the criteria."""

    minutes: float
    cases_added: int
    runs_by_trigger: dict[str, int]
    runs_by_status: dict[str, int]
    overlapping_runs: int
    orphaned_jobs: int
    dead_run_slots: int
    unsettled_cases: int
    unsettled: list[str] = Field(default_factory=list, description="Each unsettled case's job.")
    cases_by_crm_status: dict[str, int]
    duplicates: int
    max_queue_age_s: float
    queue_age_limit_s: float
    workers_killed: list[str]
    alerts_for_killed: int
    pg_connections_terminated: int
    daemon_restarts: int
    daemon_healthy_at_end: bool

    @property
    def failures(self) -> list[str]:
        """The criteria this run missed (empty: passed)."""
        out = []
        if self.overlapping_runs:
            out.append(f"{self.overlapping_runs} overlapping run(s) of one OEM")
        if self.orphaned_jobs:
            out.append(f"{self.orphaned_jobs} orphaned job(s) or lease(s)")
        if self.dead_run_slots:
            out.append(f"{self.dead_run_slots} browser slot(s) held by dead runs")
        if self.unsettled_cases:
            out.append(f"{self.unsettled_cases} case(s) not settled")
        if self.duplicates:
            out.append(f"{self.duplicates} duplicate submission(s)")
        if self.max_queue_age_s > self.queue_age_limit_s:
            out.append(f"queue age {self.max_queue_age_s:.0f} s > {self.queue_age_limit_s:.0f} s")
        if self.alerts_for_killed < len(self.workers_killed):
            out.append(f"{self.alerts_for_killed} alert(s) for {len(self.workers_killed)} kills")
        if not self.daemon_healthy_at_end:
            out.append("daemon not healthy at the end")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def render(self) -> str:
        lines = [
            f"Scheduler soak: {'PASSED' if self.passed else 'FAILED'} after {self.minutes:g} min "
            f"(the seeds' 24 hours compressed: a nightly every {self.queue_age_limit_s / 2:.0f} s)",
            f"  cases added {self.cases_added}; CRM now {self.cases_by_crm_status}",
            f"  runs by trigger {self.runs_by_trigger}; by status {self.runs_by_status}",
            f"  overlapping runs per OEM {self.overlapping_runs}; orphaned jobs/leases "
            f"{self.orphaned_jobs}; slots held by dead runs {self.dead_run_slots}",
            f"  unsettled cases {self.unsettled_cases}; duplicates in the ledgers "
            f"{self.duplicates}",
            f"  max queue age {self.max_queue_age_s:.0f} s (limit {self.queue_age_limit_s:.0f} s)",
            f"  chaos: {len(self.workers_killed)} run workers SIGKILLed "
            f"({self.alerts_for_killed} alerted), {self.pg_connections_terminated} PostgreSQL "
            f"connections terminated, {self.daemon_restarts} daemon restart(s)",
        ]
        lines += [f"  FAILED: {f}" for f in self.failures]
        lines += [f"    not settled: {u}" for u in self.unsettled]
        return "\n".join(lines)


def accelerated_adapters(target: Path, cron: str, oems: list[str] | None = None) -> Path:
    """A copy of the OEMs' folder whose settings files run the nightly at `cron` (UTC), with
    only `oems` registered when given."""
    from submissions_pipeline.settings import load_settings

    source = load_settings().adapters_dir
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    if oems is not None:  # only the OEMs whose portals the soak serves are registered
        registry = tomllib.loads((target / "registry.toml").read_text())
        (target / "registry.toml").write_text(
            "".join(
                f'[{key}]\nadapter = "{entry["adapter"]}"\nsandbox = true\n\n'
                for key, entry in registry.items()
                if key in oems
            )
        )
    for settings_file in target.glob("*/oem.toml"):
        text = settings_file.read_text()
        schedule = tomllib.loads(text).get("schedule", {})
        for key, value in (("nightly_cron", cron), ("timezone", "UTC")):
            if key in schedule:
                text = text.replace(f'"{schedule[key]}"', f'"{value}"', 1)
        settings_file.write_text(text)
    return target


def run_daemon_soak(cfg: DaemonSoakConfig, echo: Callable[[str], None] = print) -> DaemonSoakReport:
    """Run the soak and write `report.json` under `cfg.out_dir`."""
    from submissions_pipeline.crm.seed import build_bulk_cases
    from submissions_pipeline.settings import load_settings
    from submissions_pipeline.stack import Stack, StackConfig

    out = cfg.out_dir
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _drop_databases(cfg)
    env = {
        "SUBMISSIONS_ADAPTERS_DIR": str(accelerated_adapters(out / "adapters", cfg.cron, cfg.oems)),
        "SUBMISSIONS_SENSOR_INTERVAL_S": str(cfg.sensor_interval_s),
        "SUBMISSIONS_RETRY_TIME_SCALE": str(cfg.retry_time_scale),
        "SUBMISSIONS_NEW_CASES_SENSOR": "true",
    }
    stack_cfg = StackConfig(
        home=out / "home",
        server_url=load_settings().postgres_url,
        database=cfg.database,
        port=cfg.port,
        oems=cfg.oems,
        per_oem=6,
        browser_slots=cfg.browser_slots,
        monitoring_poll_s=cfg.monitoring_poll_s,
        sandbox_knobs={"error_rate": cfg.error_rate, "popup_rate": cfg.popup_rate},
        env=env,
    )
    with Stack(stack_cfg) as stack:
        from dagster import DagsterInstance

        from submissions_pipeline.crm import EmbeddedCrm
        from submissions_pipeline.store import JobStore

        oems = list(stack.portal_urls)
        total = max(len(oems), int(cfg.cases_per_minute * cfg.minutes))
        feed = [
            case.raw
            for oem in oems
            for case in build_bulk_cases(oem, total // len(oems), cfg.seed, date.today(), 0.0)
        ]
        random.Random(cfg.seed).shuffle(feed)
        crm = EmbeddedCrm.from_url(stack_cfg.job_store_url, migrate_schema=False)
        store = JobStore.from_url(stack_cfg.job_store_url, migrate_schema=False)
        instance = DagsterInstance.from_config(str(stack_cfg.dagster_home))
        chaos = _Chaos(cfg, stack, instance, stack_cfg)
        echo(f"scheduler soak: {cfg.minutes:g} min, {len(feed)} cases, stack at {stack.url}")
        try:
            max_age = _drive(cfg, feed, crm, store, chaos, echo)
            _settle(cfg, crm, store, echo)
            report = _report(cfg, len(feed), crm, store, instance, stack, chaos, max_age)
        finally:
            crm.dispose()
            store.dispose()
            instance.dispose()
    if not cfg.keep_databases:
        _drop_databases(cfg)
    (out / "report.json").write_text(report.model_dump_json(indent=2))
    echo(report.render())
    return report


def _drop_databases(cfg: DaemonSoakConfig) -> None:
    from submissions_pipeline.settings import load_settings

    engine = sa.create_engine(load_settings().postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for name in (cfg.database, f"{cfg.database}_dagster"):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


class _Chaos:
    """Kills run workers at random times; terminates the connections and restarts the daemon
    once each, at 40 % and 60 % of the soak."""

    def __init__(self, cfg: DaemonSoakConfig, stack: Any, instance: Any, stack_cfg: Any):
        self.cfg, self.stack, self.instance, self.stack_cfg = cfg, stack, instance, stack_cfg
        rng = random.Random(cfg.seed)
        span = cfg.minutes * 60
        self.kill_at = sorted(rng.uniform(0.1 * span, 0.9 * span) for _ in range(cfg.kills))
        self.pg_at, self.restart_at = 0.4 * span, 0.6 * span
        self.killed: list[str] = []
        self.terminated = 0
        self.restarts = 0

    def tick(self, elapsed: float) -> None:
        if self.kill_at and elapsed >= self.kill_at[0] and self._kill_a_worker():
            self.kill_at.pop(0)
        if self.pg_at is not None and elapsed >= self.pg_at:
            self.pg_at = None
            self.terminated = _terminate_connections(self.stack_cfg)
        if self.restart_at is not None and elapsed >= self.restart_at:
            self.restart_at = None
            self.stack.restart_daemon()
            self.restarts += 1

    def _kill_a_worker(self) -> bool:
        from dagster import DagsterRunStatus, RunsFilter

        from submissions_pipeline.run_launcher import alive, run_worker

        for record in self.instance.get_run_records(
            RunsFilter(statuses=[DagsterRunStatus.STARTED])
        ):
            run_id = record.dagster_run.run_id
            found = run_worker(self.instance, run_id)
            if found and run_id not in self.killed and (proc := alive(*found)) is not None:
                os.kill(proc.pid, signal.SIGKILL)
                self.killed.append(run_id)
                return True
        return False  # nothing running now: try again on the next tick


def _terminate_connections(stack_cfg: Any) -> int:
    from submissions_pipeline.settings import load_settings

    engine = sa.create_engine(load_settings().postgres_url, isolation_level="AUTOCOMMIT")
    names = [stack_cfg.database, f"{stack_cfg.database}_dagster"]
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = ANY(:names) AND pid <> pg_backend_pid()"
                ),
                {"names": names},
            ).all()
        return len(rows)
    finally:
        engine.dispose()


def _drive(cfg, feed, crm, store, chaos, echo) -> float:  # type: ignore[no-untyped-def]
    """Feed cases and cause chaos for `cfg.minutes`; the largest queue age seen."""
    start = time.monotonic()
    span = cfg.minutes * 60
    added, max_age, last_echo = 0, 0.0, 0.0
    while (elapsed := time.monotonic() - start) < span:
        due = min(len(feed), int(len(feed) * elapsed / span) + 1)
        for raw in feed[added:due]:
            crm.add_case(raw)
        added = due
        chaos.tick(elapsed)
        max_age = max(max_age, _queue_age(store))
        if elapsed - last_echo >= 60:
            last_echo = elapsed
            echo(f"  {elapsed / 60:4.1f} min: {added} cases in, killed {len(chaos.killed)}")
        time.sleep(2)
    for raw in feed[added:]:
        crm.add_case(raw)
    while chaos.kill_at and chaos._kill_a_worker():
        chaos.kill_at.pop(0)
    return max_age


def _queue_age(store: Any) -> float:
    try:
        return float(store.stats().oldest_due_age_s or 0.0)
    except sa.exc.OperationalError:
        return 0.0  # the chaos terminated this connection; the next read reconnects


def _unsettled(crm: Any) -> int:
    from submissions_pipeline.crm import CrmStatus

    waiting = (CrmStatus.NEW, CrmStatus.IN_PROGRESS)
    return sum(c.status in waiting for c in crm.list_cases())


def _unsettled_jobs(crm: Any, store: Any) -> list[str]:
    """Where each unsettled case's job stands, so a failed soak says what it waited for."""
    from submissions_pipeline.crm import CrmStatus

    waiting = {
        c.case_id: c.status.value
        for c in crm.list_cases()
        if c.status in (CrmStatus.NEW, CrmStatus.IN_PROGRESS)
    }
    jobs = {j.case_id: j for j in store.list_jobs() if j.case_id in waiting}
    out = []
    for case_id, status in sorted(waiting.items()):
        job = jobs.get(case_id)
        out.append(
            f"{case_id} (CRM {status}): "
            + (
                f"job {job.job_id} {job.state.value}, try {job.tries}, last step "
                f"{job.last_step}, reason {job.reason_code.value if job.reason_code else None}, "
                f"updated {job.updated_at:%H:%M:%S}"
                if job
                else "no job"
            )
        )
    return out


def _settle(cfg: DaemonSoakConfig, crm: Any, store: Any, echo: Callable[[str], None]) -> None:
    deadline = time.monotonic() + cfg.settle_minutes * 60
    while time.monotonic() < deadline and (left := _unsettled(crm)):
        echo(f"  settling: {left} case(s) not settled yet")
        time.sleep(15)


def _overlaps(records: list[Any]) -> int:
    """Pairs of runs of one OEM whose executions overlapped in time."""
    by_oem: dict[str, list[tuple[float, float]]] = {}
    now = time.time()
    for r in records:
        oem = r.dagster_run.tags.get("dagster/partition")
        if oem and r.start_time:
            by_oem.setdefault(oem, []).append((r.start_time, r.end_time or now))
    count = 0
    for spans in by_oem.values():
        latest_end = 0.0
        for start, end in sorted(spans):
            count += start < latest_end - 0.5  # started before an earlier run had ended
            latest_end = max(latest_end, end)
    return count


def _report(cfg, cases, crm, store, instance, stack, chaos, max_age) -> DaemonSoakReport:  # type: ignore[no-untyped-def]
    from dagster import AssetKey

    from submissions_pipeline.assets.submission_runs import BROWSER_POOL
    from submissions_pipeline.domain.states import LEASED_STATES
    from submissions_pipeline.launcher import daemon_heartbeats

    records = list(instance.get_run_records())
    finished = {r.dagster_run.run_id for r in records if r.dagster_run.is_finished}
    slots = instance.event_log_storage.get_concurrency_info(BROWSER_POOL)
    dead_slots = sum(s.run_id in finished for s in slots.claimed_slots)
    alerts = instance.fetch_observations(AssetKey("submission_runs"), limit=1000).records
    alerted = {
        (e.asset_observation.metadata.get("run_id").value if e.asset_observation else None)
        for e in (a.event_log_entry for a in alerts)
        if e.asset_observation is not None
    }
    duplicates = sum(len(stack.sandbox.duplicates(oem)) for oem in stack.portal_urls)
    return DaemonSoakReport(
        minutes=cfg.minutes,
        cases_added=cases,
        runs_by_trigger=dict(
            Counter(
                r.dagster_run.tags.get("submissions/trigger")
                or ("dagster_retry" if r.dagster_run.tags.get("dagster/parent_run_id") else "ui")
                for r in records
            )
        ),
        runs_by_status=dict(Counter(r.dagster_run.status.value for r in records)),
        overlapping_runs=_overlaps(records),
        orphaned_jobs=len(store.list_jobs(states=LEASED_STATES)),
        dead_run_slots=dead_slots,
        unsettled_cases=_unsettled(crm),
        unsettled=_unsettled_jobs(crm, store),
        cases_by_crm_status=dict(Counter(c.status.value for c in crm.list_cases())),
        duplicates=duplicates,
        max_queue_age_s=round(max_age, 1),
        queue_age_limit_s=2.0 * cfg.interval_s,
        workers_killed=chaos.killed,
        alerts_for_killed=sum(run_id in alerted for run_id in chaos.killed),
        pg_connections_terminated=chaos.terminated,
        daemon_restarts=chaos.restarts,
        daemon_healthy_at_end=all(b.healthy for b in daemon_heartbeats(instance)),
    )
