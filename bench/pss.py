"""PSS of the Chromium process trees this process started: what a browser really costs in RAM.

PSS (proportional set size, `/proc/PID/smaps_rollup`) splits each shared page between the
processes sharing it, so summing PSS over a browser's processes counts shared pages once; summed
RSS would count Chromium's shared binary and zygote pages once per renderer.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def chromium_dir(executable: str) -> str:
    """The folder of the real Chromium binary; every process of its tree runs a file from it."""
    return os.path.dirname(os.path.realpath(executable))


def _children_by_parent() -> dict[int, list[int]]:
    # /proc/PID/task/TID/children is not available on every kernel; the stat scan always is.
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: parse after the last ")".
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    return children


def descendants(root: int) -> list[int]:
    """Every live process below `root` (children, grandchildren, ...)."""
    children = _children_by_parent()
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def chromium_pids(executable: str, root: int | None = None) -> list[int]:
    """PIDs below `root` (default: this process) running Chromium's binaries.

    That is the browser, zygotes, renderers, GPU/utility processes and the crash handler of
    every browser this process (or its Playwright driver, or a Dagster step) launched; it
    excludes the Node driver, ffmpeg and Python helpers.
    """
    folder = chromium_dir(executable) + os.sep
    pids = []
    for pid in descendants(os.getpid() if root is None else root):
        try:
            exe = os.path.realpath(f"/proc/{pid}/exe")
        except OSError:
            continue
        if exe.startswith(folder):
            pids.append(pid)
    return pids


def pss_kb(pid: int) -> int | None:
    """PSS of one process in kB, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def tree_pss_mb(executable: str, root: int | None = None) -> tuple[float, int]:
    """Summed PSS (MB) of the Chromium processes below `root`, and how many there are."""
    total, count = 0, 0
    for pid in chromium_pids(executable, root):
        kb = pss_kb(pid)
        if kb is not None:
            total += kb
            count += 1
    return total / 1024, count


#: Command lines whose processes (and their children) are not the client: the sandbox portal.
NOT_CLIENT = (b"bench.sandbox_process",)


def _stat_cpu(pid: int) -> tuple[int, float] | None:
    """(start time in ticks, user + system CPU seconds) of a live process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_of(pid: int) -> float | None:
    """User + system CPU seconds a live process has used so far, or None when it is gone."""
    reading = _stat_cpu(pid)
    return reading[1] if reading is not None else None


class TreeCpuMeter:
    """CPU seconds of this process and of every process that ever ran below it, portal excepted.

    `RUSAGE_CHILDREN` is not enough: it only holds children that were waited for, and Chromium's
    renderers and the browser itself are not reaped up our chain (measured: it saw less than half
    of a bare run's CPU). So a background thread reads each descendant's own CPU from
    `/proc/PID/stat` every `period_s` and keeps the last reading of each (keyed by PID and start
    time, so a reused PID is a new process). A process that exits loses at most its last period.
    """

    def __init__(self, period_s: float = 0.2):
        self.period_s = period_s
        self._seen: dict[tuple[int, int], float] = {}
        self._excluded: set[tuple[int, int]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self._thread.start()

    def _is_client(self, key: tuple[int, int]) -> bool:
        # Read on every scan, not cached: between fork and exec a child still shows our own
        # command line, and the portal only becomes recognisable once it has exec'd.
        if key in self._excluded:
            return False
        try:
            cmdline = Path(f"/proc/{key[0]}/cmdline").read_bytes()
        except OSError:
            return key in self._seen
        if any(marker in cmdline for marker in NOT_CLIENT):
            self._excluded.add(key)
            self._seen.pop(key, None)
            return False
        return True

    def scan(self) -> None:
        """Read every live descendant's CPU now."""
        children = _children_by_parent()
        todo = list(children.get(os.getpid(), []))
        with self._lock:
            while todo:
                pid = todo.pop()
                reading = _stat_cpu(pid)
                if reading is None:
                    continue
                key = (pid, reading[0])
                if not self._is_client(key):
                    continue  # the portal's subtree is not the client's cost
                self._seen[key] = reading[1]
                todo.extend(children.get(pid, []))

    def _run(self) -> None:
        # A periodic timer, not synchronisation: close() ends it at once through the event.
        while not self._stop.wait(self.period_s):
            self.scan()

    def close(self) -> None:
        """Stop the background readings (the process-wide meter runs until exit)."""
        self._stop.set()
        self._thread.join(timeout=5)

    def counted_pids(self) -> set[int]:
        """PIDs whose CPU is in the total so far."""
        with self._lock:
            return {pid for pid, _ in self._seen}

    def seconds(self) -> float:
        """This process's CPU plus every descendant's so far."""
        self.scan()
        me = resource.getrusage(resource.RUSAGE_SELF)
        with self._lock:
            return me.ru_utime + me.ru_stime + sum(self._seen.values())


_METER: TreeCpuMeter | None = None
_METER_LOCK = threading.Lock()


def client_cpu_seconds() -> float:
    """CPU seconds of this process plus every process below it (driver, browsers, renderers,
    ffmpeg; not the portal), as seen by the process-wide `TreeCpuMeter` (started on first use:
    call once before launching what is to be measured)."""
    global _METER
    with _METER_LOCK:
        if _METER is None:
            _METER = TreeCpuMeter()
    return _METER.seconds()


@dataclass
class PssSample:
    """One reading of the Chromium trees' PSS."""

    at: float
    pss_mb: float
    processes: int


@dataclass
class PssSampler:
    """Reads the Chromium trees' PSS on a fixed period in a background thread while work runs.

    A period of 1 s keeps the sampler's own cost (a /proc scan and one smaps_rollup read per
    Chromium process) well under 1 % of a core; peaks shorter than the period can be missed,
    equally for every variant.
    """

    executable: str
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
