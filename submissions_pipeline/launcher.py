"""Runs the nightly job for one OEM partition in this process, on a persistent Dagster instance.

The demo behind `make run`, the soak and the benchmark launch runs this way (under the daemon,
the schedules and sensors launch the same job in their own processes). A run that fails has the
jobs it left leased dead-lettered and an alert recorded, as the run-failure sensor does under
the daemon.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, Definitions, JobDefinition

from submissions_pipeline.assets.partitions import NIGHTLY_JOB_NAME, OEM_TAG, TRIGGER_TAG
from submissions_pipeline.assets.submission_runs import BROWSER_POOL
from submissions_pipeline.domain import Job
from submissions_pipeline.sensors import dead_letter_failed_run, record_run_failure_alert
from submissions_pipeline.settings import PROJECT_ROOT
from submissions_pipeline.store import JobStore

#: The embedded default instance file, copied into a new DAGSTER_HOME.
INSTANCE_TEMPLATE = PROJECT_ROOT / "dagster.yaml"


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
    """
    result = job.execute_in_process(
        partition_key=oem,
        instance=instance,
        raise_on_error=False,
        run_config=run_config(plan=plan, log_level=log_level),
        tags={OEM_TAG: oem, TRIGGER_TAG: trigger, **(tags or {})},
    )
    run = NightlyRun(oem=oem, run_id=result.run_id, success=result.success)
    if not result.success:
        run.failure_reason = (
            "; ".join(e.message or e.event_type_value for e in result.get_step_failure_events())
            or "run failed"
        )
        run.parked = dead_letter_failed_run(store, result.run_id, run.failure_reason, trigger)
        record_run_failure_alert(instance, oem, result.run_id, run.failure_reason, run.parked)
    return run
