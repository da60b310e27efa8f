"""The fleet soak: the soak's cases and bar, on PostgreSQL, with browsers driven by a fleet of
`submissions worker` processes that are killed (SIGKILL) and drained (SIGTERM) every few
minutes and replaced, while the nightly runs only enqueue and observe (fleet mode).

`make soak SOAK_DB=postgres SOAK_WORKERS=3` runs it at 1,000 jobs; the suite at a handful.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from random import Random

from pydantic import Field
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.sandbox_process import stop_processes
from bench.soak import (
    SoakConfig,
    SoakReport,
    _busiest_dealer,
    _chart,
    _lagging_adapters,
    _report,
    _settled,
    seed_soak_cases,
    soak_nightly_job,
)
from bench.soak_checks import portal_ledgers

ROOT = Path(__file__).resolve().parents[1]


class FleetSoakConfig(SoakConfig):
    """The soak's knobs plus the fleet's."""

    workers: int = Field(3, ge=1, description="Worker processes kept running.")
    kill_every_s: float = Field(180.0, gt=0, description="A worker is killed this often.")
    first_kill_after_s: float | None = Field(
        None,
        gt=0,
        description="When the first worker dies (default: kill_every_s). A soak shorter than "
        "the interval sets it low, so at least one kill always lands.",
    )
    lease_s: float = Field(15.0, gt=0, description="Workers' lease (how soon a kill is reaped).")
    pg_url: str = Field(description="PostgreSQL server; the soak creates its own database.")
    keep_database: bool = Field(True, description="Leave the database for inspection.")


class FleetSoakReport(SoakReport):
    """The soak's report plus what happened to the workers."""

    database: str
    kills: int
    drains: int
    drains_exit_0: int
    workers_started: int


class _Fleet:
    """Worker processes kept at a count; the chaos thread kills one every `kill_every_s`."""

    def __init__(self, cfg: FleetSoakConfig, logs: Path):
        """Workers inherit this process's environment (the soak's exported settings)."""
        self.cfg, self.logs = cfg, logs
        self.procs: list[subprocess.Popen] = []
        self.log_of: dict[int, Path] = {}
        self.started = self.kills = self.drains = self.drains_ok = 0
        self._rng = Random(cfg.seed)
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start_one(self) -> None:
        self.started += 1
        path = self.logs / f"worker-{self.started}.log"
        log = path.open("w")
        cmd = [sys.executable, "-m", "submissions_pipeline.cli", "worker", "--port", "0"]
        cmd += ["--poll-s", "1", "--lease-s", str(self.cfg.lease_s), "--drain-grace-s", "20"]
        cmd += ["--context-cap", str(self.cfg.context_cap), "--video", "off"]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(proc)
        self.log_of[proc.pid] = path

    def _serving(self, proc: subprocess.Popen) -> bool:
        return "probes and metrics on port" in self.log_of[proc.pid].read_text()

    def chaos(self) -> None:
        """Kill one worker (SIGKILL and SIGTERM in turn) and start a replacement."""
        wait = self.cfg.first_kill_after_s or self.cfg.kill_every_s
        while not self._stop.wait(wait):
            wait = self.cfg.kill_every_s
            with self._lock:
                alive = [p for p in self.procs if p.poll() is None]
                if not alive:
                    continue
                victim = self._rng.choice(alive)
                # SIGKILL hits anywhere; a drain is judged on workers that finished starting
                # (one told to stop while it starts exits 0 at once, but is not a drain).
                if (self.kills + self.drains) % 2 == 0 or not self._serving(victim):
                    victim.send_signal(signal.SIGKILL)
                    self.kills += 1
                    victim.wait()
                else:
                    victim.send_signal(signal.SIGTERM)
                    self.drains += 1
                    self.drains_ok += victim.wait() == 0
                self.procs.remove(victim)
                self.start_one()

    def __enter__(self) -> _Fleet:
        for _ in range(self.cfg.workers):
            self.start_one()
        self._thread = threading.Thread(target=self.chaos, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        stop_processes(self.procs)


def _on_server(server: str, statement: str) -> None:
    """Run one statement on the server outside a transaction (CREATE and DROP DATABASE
    refuse to run inside one)."""
    admin = create_engine(
        make_url(server).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(statement))
    admin.dispose()


def _create_database(server: str, name: str) -> str:
    _on_server(server, f'CREATE DATABASE "{name}"')
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def _drop_database(server: str, name: str) -> None:
    _on_server(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_fleet_soak(cfg: FleetSoakConfig, echo: Callable[[str], None] = print) -> FleetSoakReport:
    """Run the fleet soak in a fresh home and database; write report.json (and chart.png).

    Like the in-process soak, one portal's lookup lags behind its records (its OEM trusts no
    miss) and one dealer has a short password: here the worker processes are the ones that
    reconcile on it and that must keep the password out of their traces and logs.
    """
    from sandbox.accounts import password_overrides
    from submissions_pipeline.demo import demo_environment, sandbox_oems
    from submissions_pipeline.launcher import launch_nightly, persistent_instance
    from submissions_pipeline.settings import exported_environment, load_settings
    from submissions_pipeline.store import JobStore

    oems = sandbox_oems(cfg.oems)
    home = (cfg.out_dir / "home").resolve()
    # A fresh home: the last soak's Dagster instance holds its CRM cursors, which would skip
    # every case of the new database below them.
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    name = f"soak_fleet_{uuid.uuid4().hex[:8]}"
    db_url = _create_database(cfg.pg_url, name)
    fresh = {
        "SUBMISSIONS_HOME": str(home),
        "SUBMISSIONS_DB_URL": db_url,
        "SUBMISSIONS_BROWSER_DRIVER": "fleet",
        "SUBMISSIONS_RETRY_TIME_SCALE": str(cfg.retry_time_scale),
        "DAGSTER_HOME": None,
    }
    lag = cfg.lagging_portal if cfg.lagging_portal and cfg.lagging_portal.oem in oems else None
    # The workers inherit the adapters folder with the lagging OEM's policy.
    fresh |= _lagging_adapters(cfg.model_copy(update={"lagging_portal": lag}), home)
    dealer = None
    try:
        with exported_environment(fresh):
            settings = load_settings()
            cases, invalid = seed_soak_cases(db_url, cfg, oems)
            echo(f"fleet soak: {cases} cases, {cfg.workers} workers on PostgreSQL ({name})")
            if cfg.short_password and cfg.short_password_oem in oems:
                dealer = _busiest_dealer(db_url, cfg.short_password_oem)
            # The portals (in this process) accept it and the credentials file the workers
            # read hands it out, both written inside the block below.
            short = {(cfg.short_password_oem, dealer): cfg.short_password} if dealer else {}
            echo(
                f"  lagging portal {lag and lag.model_dump()}; short password for "
                f"{cfg.short_password_oem}/{dealer}"
            )
            started, t0 = datetime.now(UTC), time.monotonic()
            runs = failed_runs = rounds = 0
            with (
                password_overrides(short),
                demo_environment(oems, sandbox_knobs=cfg.faults) as demo,
                persistent_instance(demo.dagster_home, browser_slots=1) as instance,
            ):
                if lag is not None:
                    demo.sandbox.configure(
                        lag.oem,
                        search_lag_s=lag.search_lag_s,
                        drop_after_submit_rate=lag.drop_after_submit_rate,
                    )
                with _Fleet(cfg, home) as fleet:
                    job = soak_nightly_job(settings, demo, db_url, cfg.retry_time_scale)
                    store = JobStore.from_url(db_url, migrate_schema=False)
                    while rounds < cfg.max_rounds and time.monotonic() - t0 < cfg.time_limit_s:
                        rounds += 1
                        for oem in oems:
                            run = launch_nightly(job, oem, instance, store=store, trigger="soak")
                            runs += 1
                            failed_runs += not run.success
                        settled, wait_s = _settled(store)
                        states = Counter(j.state.value for j in store.list_jobs())
                        echo(f"  round {rounds}: {json.dumps(states)}; kills {fleet.kills}")
                        if settled:
                            break
                        time.sleep(min(max(wait_s, 1.0), 60))
                ledgers = portal_ledgers(demo.portal_urls)
                base = _report(
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
    finally:
        if not cfg.keep_database:
            _drop_database(cfg.pg_url, name)
    base.short_password_dealer = f"{cfg.short_password_oem}/{dealer}" if dealer else None
    report = FleetSoakReport(
        **base.model_dump(),
        database=name,
        kills=fleet.kills,
        drains=fleet.drains,
        drains_exit_0=fleet.drains_ok,
        workers_started=fleet.started,
    )
    if fleet.drains_ok != fleet.drains:
        report.problems.append(f"{fleet.drains - fleet.drains_ok} drain(s) did not exit 0")
        report.passed = False
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "report.json").write_text(report.model_dump_json(indent=2))
    if cfg.keep_database:
        _chart(db_url, cfg.out_dir / "chart.png")
    echo(report.render())
    echo(
        f"  workers: {fleet.started} started, {fleet.kills} SIGKILLed, {fleet.drains} drained "
        f"({fleet.drains_ok} exited 0)"
    )
    return report
