"""Runs the nightly job for one OEM partition in this process, on a persistent Dagster instance.

The demo behind `make run`, the soak and the benchmark launch runs this way (under the daemon,
the schedules and sensors launch the same job in their own processes). A run that fails has the
jobs it left leased dead-lettered and an alert recorded, as the run-failure sensor does under
the daemon. A run that was interrupted (SIGTERM, Ctrl-C) or whose process was killed gives its
jobs back the way the reaper does (the queue, or reconciliation after a submit click) and, for a
killed one, is marked failed with its browser slots freed when the next launch starts: without
a daemon nothing else would, and every later run would wait for those slots forever.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from dagster import DagsterInstance, DagsterRunStatus, Definitions, JobDefinition, RunsFilter

from submissions_pipeline.assets.partitions import NIGHTLY_JOB_NAME, OEM_TAG, TRIGGER_TAG
from submissions_pipeline.assets.submission_runs import BROWSER_POOL
from submissions_pipeline.domain import Job
from submissions_pipeline.sensors import (
    dead_letter_failed_run,
    record_run_failure_alert,
    step_was_interrupted,
)
from submissions_pipeline.settings import PROJECT_ROOT
from submissions_pipeline.store import JobStore

#: The embedded default instance file, copied into a new DAGSTER_HOME.
INSTANCE_TEMPLATE = PROJECT_ROOT / "dagster.yaml"

#: Run tags naming the process that executes an in-process run, so a later launch can tell
#: whether it is still alive (host, PID and the PID's start time: PIDs are reused).
PROCESS_TAG = "submissions/process"

#: Run statuses of a run that has not ended.
_UNFINISHED = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


class RunInterrupted(KeyboardInterrupt):
    """The launcher was told to stop (SIGTERM, Ctrl-C) while a run was executing."""


def _this_process() -> str:
    started = psutil.Process().create_time()
    return f"{socket.gethostname()}:{os.getpid()}:{started:.0f}"


def _process_gone(tag: str) -> bool:
    """Whether the process a PROCESS_TAG names is gone (only decidable on this host)."""
    host, _, rest = tag.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) > 1
    except (psutil.NoSuchProcess, ValueError):
        return True


def recover_dead_runs(instance: DagsterInstance, store: JobStore) -> list[str]:
    """Runs launched in-process whose process died: mark them failed, free their browser slots
    and give their jobs back (queue, or reconciliation after a submit click). Their ids."""
    recovered = []
    for record in instance.get_run_records(RunsFilter(statuses=_UNFINISHED)):
        run = record.dagster_run
        tag = run.tags.get(PROCESS_TAG)
        if tag is None or not _process_gone(tag):
            continue
        instance.report_run_failed(run, "the process executing this run is gone (killed)")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        store.reap_expired(actor=f"launcher:recovered:{run.run_id}", run_id=run.run_id)
        recovered.append(run.run_id)
    return recovered


def run_config(*, plan: Mapping[str, Any] | None = None, log_level: str = "INFO") -> dict:
    """Run config of the nightly job: the planner's batch parameters (SubmissionRunConfig
    fields) and the console log level (each event stays in the run's event log)."""
    config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if plan:
        config["ops"] = {"submission_runs": {"ops": {"plan_workers": {"config": dict(plan)}}}}
    return config


def prepare_instance_home(home: Path, template: Path = INSTANCE_TEMPLATE) -> Path:
    """A Dagster home folder holding an instance file (copied from `template` if missing)."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if template.exists() and not target.exists():
        shutil.copyfile(template, target)
    return home


@contextmanager
def persistent_instance(home: Path, *, browser_slots: int) -> Iterator[DagsterInstance]:
    """The instance under `home` with the browser pool sized to `browser_slots`.

    Pools only hold on a persistent instance: the ephemeral one of a bare `materialize()`
    ignores them.
    """
    with DagsterInstance.from_config(str(prepare_instance_home(home))) as instance:
        instance.event_log_storage.set_concurrency_slots(BROWSER_POOL, browser_slots)
        yield instance


@dataclass
class NightlyRun:
    """One run of the nightly job for one OEM, as the launcher saw it end."""

    oem: str
    run_id: str
    success: bool
    failure_reason: str | None = None
    parked: list[Job] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{'SUCCESS' if self.success else 'FAILURE'} run {self.run_id}"


def nightly_job(defs: Definitions) -> JobDefinition:
    """The nightly job of a set of definitions."""
    return defs.resolve_job_def(NIGHTLY_JOB_NAME)


def launch_nightly(
    job: JobDefinition,
    oem: str,
    instance: DagsterInstance,
    *,
    store: JobStore,
    trigger: str,
    plan: Mapping[str, Any] | None = None,
    log_level: str = "INFO",
    tags: Mapping[str, str] | None = None,
) -> NightlyRun:
    """Materialize the nightly job for `oem` in this process and handle a failed run.

    `trigger` tags the run (make_run, soak, bench) so the runs page tells launches apart.
    Raises RunInterrupted when the process was told to stop during the run (after giving the
    run's jobs back).
    """
    recover_dead_runs(instance, store)
    result = job.execute_in_process(
        partition_key=oem,
        instance=instance,
        raise_on_error=False,
        run_config=run_config(plan=plan, log_level=log_level),
        tags={OEM_TAG: oem, TRIGGER_TAG: trigger, PROCESS_TAG: _this_process(), **(tags or {})},
    )
    run = NightlyRun(oem=oem, run_id=result.run_id, success=result.success)
    if result.success:
        return run
    failures = result.get_step_failure_events()
    run.failure_reason = (
        "; ".join(e.message or e.event_type_value for e in failures) or "run failed"
    )
    if any(step_was_interrupted(e) for e in failures):
        store.reap_expired(actor=f"launcher:interrupted:{result.run_id}", run_id=result.run_id)
        raise RunInterrupted(f"{oem}: run {result.run_id} interrupted")
    run.parked = dead_letter_failed_run(store, result.run_id, run.failure_reason, trigger)
    record_run_failure_alert(instance, oem, result.run_id, run.failure_reason, run.parked)
    return run


@dataclass
class DaemonHealth:
    """One of the daemon's threads as its heartbeats show it."""

    daemon: str
    healthy: bool
    last_heartbeat_age_s: float | None


def daemon_heartbeats(instance: DagsterInstance) -> list[DaemonHealth]:
    """The heartbeats of every daemon thread the instance needs (schedules, sensors, run queue,
    monitoring, run retries). Nothing inside a run can notice that the daemon stopped; these
    can, and they are what `submissions status` reports."""
    now = time.time()
    out = []
    for kind, status in sorted(instance.get_daemon_statuses().items()):
        beat = status.last_heartbeat
        out.append(
            DaemonHealth(
                daemon=kind,
                healthy=bool(status.healthy),
                last_heartbeat_age_s=None if beat is None else round(now - beat.timestamp, 1),
            )
        )
    return out
