"""A fleet on one machine: real `submissions worker` processes on PostgreSQL and the sandbox."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from sandbox.accounts import credentials_document

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy; its value, or AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {predicate}")
        time.sleep(every)


class WorkerProcess:
    """One worker process: its probes, its metrics, its signals."""

    def __init__(self, proc: subprocess.Popen, log: Path, name: str):
        self.proc = proc
        self.log = log
        self.name = name
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:

            def announced() -> int | None:
                self.assert_alive()
                m = re.search(r"probes and metrics on port (\d+)", self.log.read_text())
                return int(m.group(1)) if m else None

            self._port = wait_until(announced, timeout=60)
        return self._port

    def assert_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.tail()}")

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text()[-n:] if self.log.exists() else ""

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """Every sample, keyed by (name, sorted labels), parsed by prometheus-client's parser."""
        status, body = self.get("/metrics")
        assert status == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body)
            for s in fam.samples
        }

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class Fleet:
    """Starts workers against one database and the sandbox; kills what is left at the end."""

    def __init__(self, db_url: str, sandbox: Any, home: Path, oems: list[str]):
        self.db_url = db_url
        self.sandbox = sandbox
        self.home = home
        self.oems = oems
        self.workers: list[WorkerProcess] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SUBMISSIONS_HOME": str(self.home),
            "SUBMISSIONS_DB_URL": self.db_url,
            "SUBMISSIONS_PORTAL_URLS": json.dumps({o: self.sandbox.base_url(o) for o in self.oems}),
            "SUBMISSIONS_CREDENTIALS": json.dumps(credentials_document(self.oems)),
            "SUBMISSIONS_RETRY_TIME_SCALE": "0.001",
            **extra,
        }

    def start(self, *args: str, failpoint: str = "", **env: str) -> WorkerProcess:
        name = f"worker-{len(self.workers)}"
        log = self.home / f"{name}.log"
        cmd = [sys.executable, "-m", "submissions_pipeline.cli", "worker", "--port", "0"]
        cmd += ["--video", "off", "--poll-s", "0.3", *args]
        with log.open("w") as out:
            proc = subprocess.Popen(
                cmd,
                env=self.env(SUBMISSIONS_FAILPOINTS=failpoint, **env),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        w = WorkerProcess(proc, log, name)
        self.workers.append(w)
        return w

    def stop_all(self) -> None:
        for w in self.workers:
            w.kill()
