"""The sandbox portals in a child process, so a portal never competes with the client for a GIL.

`python -m bench.sandbox_process` serves the portals on free loopback ports, prints their URLs
as one JSON line and serves until its stdin closes (the harness closes it, or dies). The harness
changes knobs, resets and reads ledgers through the portals' admin API (`/__admin/...`), as any
outside client would.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from sandbox.admin_client import admin_request

#: Seconds the child may take to import the portals and answer HTTP.
STARTUP_TIMEOUT_S = 60.0


class SandboxProcess:
    """Sandbox portals served by a child process for the duration of a `with` block."""

    def __init__(self, oems: Sequence[str] = ("northwind",), knobs: dict[str, Any] | None = None):
        self.oems = list(oems)
        self.knobs = dict(knobs or {})
        self.urls: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SandboxProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.sandbox_process", json.dumps([self.oems, self.knobs])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], STARTUP_TIMEOUT_S)
        line = self._proc.stdout.readline() if ready else b""
        if not line:
            self.__exit__(None, None, None)
            raise RuntimeError("sandbox portals did not start (see the output above)")
        self.urls = json.loads(line)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.stdin is not None:
            proc.stdin.close()  # the child's cue to stop
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def pid(self) -> int | None:
        """The child's PID (its portals are not part of any browser tree)."""
        return self._proc.pid if self._proc else None

    def base_url(self, oem: str) -> str:
        """Where a portal serves, e.g. http://127.0.0.1:NNNNN."""
        return self.urls[oem]

    def reset(self, **knobs: Any) -> None:
        """Empty every portal's ledger, sessions and drafts; then apply `knobs` on top."""
        for oem in self.oems:
            admin_request(f"{self.urls[oem]}/__admin/reset", {})
            if knobs:
                admin_request(f"{self.urls[oem]}/__admin/config", knobs)

    def ledger(self, oem: str) -> list[dict[str, Any]]:
        """Every submission the portal received, oldest first."""
        return admin_request(f"{self.urls[oem]}/__admin/ledger")

    def duplicates(self, oem: str) -> list[dict[str, Any]]:
        """Case ids the portal received more than once."""
        return admin_request(f"{self.urls[oem]}/__admin/ledger/duplicates")


def main(argv: Sequence[str]) -> int:
    """Serve until stdin closes; print the portals' URLs as one JSON line first."""
    from sandbox import SandboxServer

    oems, knobs = json.loads(argv[0]) if argv else (["northwind"], {})
    with SandboxServer(oems=oems, knobs=knobs) as server:
        sys.stdout.write(json.dumps(server.urls) + "\n")
        sys.stdout.flush()
        # Blocks until the harness closes the pipe (or exits): EOF is the stop signal.
        while os.read(sys.stdin.fileno(), 4096):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


def stop_processes(procs: list[subprocess.Popen], grace_s: float = 60.0) -> None:
    """SIGTERM every process still running, give each `grace_s` to drain, then SIGKILL it."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=30)
