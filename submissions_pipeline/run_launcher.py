"""The run launcher of a one-machine deployment: Dagster's default one, plus a health check.

Dagster's default launcher starts each run as a child process of the code server, but it cannot
say whether that process is still alive, so run monitoring never notices a run worker that was
SIGKILLed (or killed by the kernel for memory): the run stays STARTED and holds its browser
slots forever. This launcher answers the monitoring daemon's health check from the process
table: the run worker's PID is in the run's own event log (the code server logs "Started
process for run (pid: N)"), and a live process with that PID must have started before that
event, since PIDs are reused. A run worker found dead may leave its
step processes (and their browsers) running; they are killed at the same moment, so nothing keeps
driving a portal for a run Dagster has given up on.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import threading
from collections.abc import Iterator
from typing import Any

import psutil
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

#: The code server's engine event naming a run worker's PID.
_STARTED = re.compile(r"Started process for run \(pid: (\d+)\)")

#: What a failed health check says; the run-failure sensor recognises a crashed run by it.
RUN_WORKER_GONE = "run worker process is gone"

#: How the code server and the monitor say a run's process died (rather than a step failing).
_CRASH_MARKERS = (RUN_WORKER_GONE, "terminated by signal", "terminated unexpectedly")

#: A process is (pid, start time): PIDs are reused, a (pid, start time) pair is not.
Proc = tuple[int, float]


def run_worker(instance: Any, run_id: str) -> tuple[int, float] | None:
    """The PID of the process executing `run_id` and when the code server logged it, from the
    run's engine events (None: not logged yet)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT).records
    for record in reversed(records):
        entry = record.event_log_entry
        event = entry.dagster_event
        found = _STARTED.search((event.message if event else None) or "")
        if found:
            return int(found.group(1)), entry.timestamp
    return None


def alive(pid: int, started_by: float) -> psutil.Process | None:
    """The live process `pid` if it existed at `started_by` (a later one reuses the PID)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or proc.create_time() > started_by + 1:
            return None
        return proc
    except psutil.Error:
        return None


class LocalRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers the monitoring daemon can check (same machine).

    Each healthy check remembers the worker's descendants (step processes, Playwright drivers,
    browsers); when the worker is found dead, those still running are killed.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    @property
    def _families(self) -> dict[str, set[Proc]]:
        if not hasattr(self, "_family_cache"):
            self._family_cache: dict[str, set[Proc]] = {}
        return self._family_cache

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        found = run_worker(self._instance, run.run_id)
        if found is None:
            # Anything but RUNNING fails the run at once; start and runtime limits still apply.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker PID not logged yet")
        pid, logged_at = found
        worker = alive(pid, logged_at)
        if worker is not None:
            with contextlib.suppress(psutil.Error):
                family = self._families.setdefault(run.run_id, set())
                family |= {(p.pid, p.create_time()) for p in worker.children(recursive=True)}
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        killed = kill_leftovers(self._families.pop(run.run_id, set()))
        detail = f"pid {pid}; {killed} leftover processes killed"
        return CheckRunHealthResult(WorkerStatus.FAILED, f"{RUN_WORKER_GONE} ({detail})")


def kill_leftovers(family: set[Proc]) -> int:
    """SIGKILL the processes of `family` still running (and theirs). How many were killed."""
    doomed: list[psutil.Process] = []
    for pid, started in family:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if abs(proc.create_time() - started) < 1:
                doomed += [proc, *proc.children(recursive=True)]
    for proc in doomed:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(doomed, timeout=5)
    return len(doomed)


def run_worker_crashed(instance: DagsterInstance, run_id: str) -> bool:
    """Whether a failed run failed because its process died (SIGKILL, out of memory), as the
    code server or run monitoring recorded it, rather than because a step failed."""
    kinds = (DagsterEventType.ENGINE_EVENT, DagsterEventType.RUN_FAILURE)
    for kind in kinds:
        for record in instance.get_records_for_run(run_id, of_type=kind).records:
            event = record.event_log_entry.dagster_event
            message = (event.message if event else None) or ""
            if any(marker in message for marker in _CRASH_MARKERS):
                return True
    return False


def _run_worker_ancestor() -> psutil.Process | None:
    """The run worker above this process: the ancestor the code server (`dagster api grpc`)
    started, or one started as `dagster api execute_run`; None when the run is in-process."""
    with contextlib.suppress(psutil.Error):
        chain = psutil.Process().parents()
        for proc, parent in itertools.pairwise(chain):
            if "execute_run" in " ".join(proc.cmdline()) or "grpc" in " ".join(parent.cmdline()):
                return proc
    return None


@contextlib.contextmanager
def dies_with_its_run_worker(poll_s: float = 1.0) -> Iterator[None]:
    """Inside a step process of a launched run: if the run worker dies (SIGKILL, out of
    memory), kill this process and its browsers within `poll_s`.

    Dagster's step processes outlive a killed run worker and would keep driving the portal for
    a run that is already marked failed, whose jobs are being given back to other workers. In
    a run executed in-process (no run worker above this process) it does nothing.
    """
    worker = _run_worker_ancestor()
    if worker is None:
        yield
        return
    started = worker.create_time()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(poll_s):
            if alive(worker.pid, started) is None:
                with contextlib.suppress(psutil.Error):
                    for child in psutil.Process().children(recursive=True):
                        with contextlib.suppress(psutil.Error):
                            child.kill()
                os.kill(os.getpid(), signal.SIGKILL)

    watcher = threading.Thread(target=watch, name="run-worker-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
