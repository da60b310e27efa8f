"""Memory (PSS) and CPU time of the process trees the benchmark starts: what a browser really costs.

PSS (proportional set size) splits each shared page between the processes sharing it, so summing
PSS over a browser's processes counts shared pages once; summed RSS would count Chromium's shared
binary and zygote pages once per renderer. Everything is read through psutil, and a process that
vanishes mid-read (gone, zombie, or no longer readable) is skipped, never an error.

Which processes are the browser: the descendants of `root` (default: this process) whose
executable is a browser file. The browser folders are the folders of the running descendants whose
executable (symlinks resolved) is named like a Chromium binary (`CHROMIUM_BINARIES`), plus the
folder of the `executable` the caller names when that is a binary rather than a wrapper script.
Every descendant running a file from one of those folders is the browser (browser, zygotes,
renderers, GPU, network, storage and utility processes all run the browser's own file; the crash
handler sits beside it), except the Playwright Node driver, ffmpeg, Python and shells
(`NOT_BROWSER`), should a browser folder also hold those. So a browser started through a wrapper
(`/usr/bin/chromium-headless-shell` runs `/bin/sh`, which runs
`/usr/lib/chromium/chromium-headless-shell`) is found by its real binary; the wrapper's shell is
not part of it.
"""

from __future__ import annotations

import os
import re
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

#: File names of Chromium-family binaries: the browsers (Debian's, Google's and Playwright's
#: builds and headless shells) and the crash handler shipped beside them.
CHROMIUM_BINARIES = frozenset(
    {
        "chromium",
        "chromium-browser",
        "chromium-headless-shell",
        "chrome",
        "chrome-headless-shell",
        "headless_shell",
        "chrome_crashpad_handler",
    }
)

#: Executables that are never the browser, even in a browser folder: the Playwright driver
#: (Node), its video encoder (ffmpeg), Python helpers and the shell of a wrapper script.
NOT_BROWSER = re.compile(r"node|ffmpeg.*|python.*|sh|bash|dash|zsh|busybox")

#: Command-line markers of processes whose subtrees are not the client: the sandbox portal.
NOT_CLIENT = ("bench.sandbox_process",)

# A process that exits, turns zombie or becomes unreadable between two reads. ZombieProcess is a
# NoSuchProcess, so catching that catches both.
_GONE = (psutil.NoSuchProcess, psutil.AccessDenied)


class _OwnCost:
    """CPU the measuring threads themselves spend (process-table scans, smaps_rollup reads).

    They run inside the harness process, whose CPU is part of every variant's figure, so what
    they spend is added up here and left out of `client_cpu_seconds`: measured with 9 browser
    processes, a scan costs ~5 ms and a PSS reading ~26 ms, together ~5 % of a core at the
    meter's and the sampler's periods, more than a variant's margin over another.
    """

    def __init__(self) -> None:
        self._seconds = 0.0
        self._lock = threading.Lock()

    @contextmanager
    def counted(self) -> Iterator[None]:
        t0 = time.thread_time()
        try:
            yield
        finally:
            spent = time.thread_time() - t0
            with self._lock:
                self._seconds += spent

    def seconds(self) -> float:
        with self._lock:
            return self._seconds


#: The measuring threads' own CPU so far (see `_OwnCost`).
MEASURING = _OwnCost()


def _below(root: int | None) -> list[psutil.Process]:
    """Every process below `root` (default: this process); none when `root` is gone."""
    try:
        return psutil.Process(root).children(recursive=True)
    except _GONE:
        return []


def _exe(proc: psutil.Process) -> str | None:
    """The file a process runs (the kernel resolves symlinks), or None when gone or unreadable."""
    try:
        return proc.exe() or None
    except _GONE:
        return None


def _cmdline(proc: psutil.Process) -> list[str] | None:
    """A process's command line; [] for a zombie (it has none left), None when unreadable."""
    try:
        return proc.cmdline()
    except psutil.ZombieProcess:
        return []
    except _GONE:
        return None


def _binary_folder(executable: str | None) -> str | None:
    """The folder of `executable` (symlinks resolved) when it is a binary, not a wrapper script."""
    if not executable:
        return None
    real = os.path.realpath(executable)
    try:
        with open(real, "rb") as fh:
            if fh.read(2) == b"#!":
                return None
    except OSError:
        return None
    return os.path.dirname(real)


def chromium_processes(
    executable: str | None = None, root: int | None = None
) -> list[psutil.Process]:
    """The browser processes below `root` (default: this process), by the module's rule."""
    exes = [(proc, _exe(proc)) for proc in _below(root)]
    folders = {
        os.path.dirname(exe)
        for _, exe in exes
        if exe and os.path.basename(exe) in CHROMIUM_BINARIES
    }
    if (given := _binary_folder(executable)) is not None:
        folders.add(given)
    return [
        proc
        for proc, exe in exes
        if exe
        and os.path.dirname(exe) in folders
        and not NOT_BROWSER.fullmatch(os.path.basename(exe))
    ]


def chromium_pids(executable: str | None = None, root: int | None = None) -> list[int]:
    """PIDs of the browser processes below `root` (default: this process).

    That is the browser, zygotes, renderers, GPU/utility processes and the crash handler of
    every browser this process (or its Playwright driver, or a Dagster step) launched; it
    excludes the Node driver, ffmpeg, Python helpers and wrapper shells. `executable` is the
    binary or wrapper the browsers were launched with: optional, the processes name themselves.
    """
    return [proc.pid for proc in chromium_processes(executable, root)]


def _pss_bytes(proc: psutil.Process) -> int | None:
    """PSS of one process in bytes, or None when it is gone or unreadable."""
    try:
        return proc.memory_full_info().pss
    except _GONE:
        return None


def tree_pss_mb(executable: str | None = None, root: int | None = None) -> tuple[float, int]:
    """Summed PSS (MB) of the browser processes below `root`, and how many were read."""
    total, count = 0, 0
    for proc in chromium_processes(executable, root):
        pss = _pss_bytes(proc)
        if pss is not None:
            total += pss
            count += 1
    return total / 1024 / 1024, count


def cpu_seconds_of(pid: int) -> float | None:
    """User + system CPU seconds a live process has used so far, or None when it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except _GONE:
        return None
    return times.user + times.system


class TreeCpuMeter:
    """CPU seconds of this process and of every process that ever ran below it, portal excepted.

    `RUSAGE_CHILDREN` is not enough: it only holds children that were waited for, and Chromium's
    renderers and the browser itself are not reaped up our chain (measured: it saw less than half
    of a bare run's CPU). So a background thread reads each descendant's own CPU every `period_s`
    and keeps the last reading of each, keyed by its `psutil.Process` (equal only for the same PID
    and the same start time since boot, so a reused PID is a new process). A process that exits
    loses at most its last period.
    """

    def __init__(self, period_s: float = 0.2):
        self.period_s = period_s
        self._seen: dict[psutil.Process, float] = {}
        self._excluded: set[psutil.Process] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self._thread.start()

    def _is_client(self, proc: psutil.Process, cmdline: list[str] | None) -> bool:
        if proc in self._excluded:
            return False
        if cmdline is None:  # unreadable now: keep following it only if it was a client
            return proc in self._seen
        if any(marker in arg for arg in cmdline for marker in NOT_CLIENT):
            self._excluded.add(proc)
            self._seen.pop(proc, None)
            return False
        return True

    def scan(self) -> None:
        """Read every live descendant's CPU now."""
        me = os.getpid()
        with self._lock:
            # One reading per process, grouped by parent so that the portal's subtree is skipped.
            by_parent: dict[int, list[tuple[psutil.Process, float, list[str] | None]]] = {}
            for proc in _below(me):
                try:
                    with proc.oneshot():
                        parent = proc.ppid()
                        times = proc.cpu_times()
                except _GONE:
                    continue
                # Read on every scan, not cached: between fork and exec a child still shows our
                # own command line, and the portal only becomes recognisable once it has exec'd.
                cmdline = None if proc in self._excluded else _cmdline(proc)
                by_parent.setdefault(parent, []).append((proc, times.user + times.system, cmdline))
            todo = list(by_parent.get(me, []))
            while todo:
                proc, seconds, cmdline = todo.pop()
                if not self._is_client(proc, cmdline):
                    continue  # the portal's subtree is not the client's cost
                self._seen[proc] = seconds
                todo.extend(by_parent.get(proc.pid, []))

    def _run(self) -> None:
        # A periodic timer, not synchronisation: close() ends it at once through the event.
        while not self._stop.wait(self.period_s):
            with MEASURING.counted():
                self.scan()

    def close(self) -> None:
        """Stop the background readings (the process-wide meter runs until exit)."""
        self._stop.set()
        self._thread.join(timeout=5)

    def counted_pids(self) -> set[int]:
        """PIDs whose CPU is in the total so far."""
        with self._lock:
            return {proc.pid for proc in self._seen}

    def seconds(self) -> float:
        """This process's CPU plus every descendant's so far."""
        self.scan()
        # getrusage, not psutil: microseconds rather than clock ticks for the process itself.
        me = resource.getrusage(resource.RUSAGE_SELF)
        with self._lock:
            return me.ru_utime + me.ru_stime + sum(self._seen.values())

    def quick_seconds(self) -> float:
        """`seconds()` without the process-table scan: re-reads the processes already found
        (the background scan adds new ones within `period_s`). Cheap enough to read at every
        step boundary of a job, which a full scan is not (it reads every process on the host)."""
        me = resource.getrusage(resource.RUSAGE_SELF)
        with self._lock:
            for proc in list(self._seen):
                try:
                    times = proc.cpu_times()
                except _GONE:
                    continue  # keeps its last reading
                self._seen[proc] = times.user + times.system
            return me.ru_utime + me.ru_stime + sum(self._seen.values())


_METER: TreeCpuMeter | None = None
_METER_LOCK = threading.Lock()


def _meter() -> TreeCpuMeter:
    global _METER
    with _METER_LOCK:
        if _METER is None:
            _METER = TreeCpuMeter()
        return _METER


def client_cpu_seconds() -> float:
    """CPU seconds of this process plus every process below it (driver, browsers, renderers,
    ffmpeg; not the portal), as seen by the process-wide `TreeCpuMeter` (started on first use:
    call once before launching what is to be measured), without what the measuring threads
    spent themselves (`MEASURING`)."""
    meter = _meter()
    with MEASURING.counted():
        seconds = meter.seconds()
    return seconds - MEASURING.seconds()


def step_cpu_seconds() -> float:
    """The process-wide meter's quick reading (see `TreeCpuMeter.quick_seconds`): the clock a
    job's steps are timed with for CPU per step. No process-table scan here: a scan per step
    boundary (~5 ms each, on the jobs' own event loop) would land in the steps it measures."""
    meter = _meter()
    with MEASURING.counted():
        seconds = meter.quick_seconds()
    return seconds - MEASURING.seconds()


@dataclass
class PssSample:
    """One reading of the browser trees' PSS."""

    at: float
    pss_mb: float
    processes: int


@dataclass
class PssSampler:
    """Reads the browser trees' PSS on a fixed period in a background thread while work runs.

    A period of 1 s keeps the sampler's own cost (a process-table scan and one smaps_rollup read
    per browser process, ~26 ms with 9 of them) near 3 % of a core, which `MEASURING` keeps out
    of the CPU figures; peaks shorter than the period can be missed, equally for every variant.
    """

    executable: str | None = None
    period_s: float = 1.0
    samples: list[PssSample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> PssSample:
        """Take one reading now (also usable without the thread)."""
        mb, n = tree_pss_mb(self.executable)
        reading = PssSample(at=time.monotonic(), pss_mb=mb, processes=n)
        self.samples.append(reading)
        return reading

    def _run(self) -> None:
        # A periodic timer, not synchronisation: stop() ends it at once through the event.
        while not self._stop.wait(self.period_s):
            with MEASURING.counted():
                self.sample()

    def __enter__(self) -> PssSampler:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def peak_mb(self) -> float:
        """The highest reading so far (0 without readings)."""
        return max((s.pss_mb for s in self.samples), default=0.0)

    def peak_between(self, start: float, end: float) -> float | None:
        """The highest reading taken in [start, end] (monotonic seconds), if any."""
        values = [s.pss_mb for s in self.samples if start <= s.at <= end]
        return max(values) if values else None
