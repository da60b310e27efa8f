"""`make up`: the production shape on one machine, under the real Dagster daemon.

`dagster-webserver` and `dagster-daemon` on an instance stored in PostgreSQL (runs, events,
schedules), with the production instance's run queue (one run per OEM), browser pool, run
monitoring and run retries for crashed runs, the job store on the same PostgreSQL server, and the
sandbox portals. Runs execute in their own processes, launched by the daemon's queue, which is
what production does and what `make run` (in-process) does not exercise.

The code location runs in a code server of its own (`dagster code-server start`), which the
webserver and the daemon reach over gRPC, as a production deployment has it: the run workers are
the code server's children, so restarting the daemon (a changed `dagster.yaml`, an upgrade)
leaves the night's runs in flight running instead of killing them with the daemon's own code
server. The three run in their own process groups with default signal handling; stopping the
stack stops every group and whatever it started (run workers, browsers), so nothing is left
behind after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from submissions_pipeline.settings import PROJECT_ROOT, exported_environment

#: The instance file `make up` writes into its DAGSTER_HOME: deploy/dagster.yaml's settings with
#: PostgreSQL on this machine, compute logs on local disk and the health-checking launcher.
INSTANCE_YAML = """\
# Written by `submissions up`: the production instance (deploy/dagster.yaml) on one machine.
storage:
  postgres:
    postgres_url: "{dagster_url}"
run_launcher:
  module: submissions_pipeline.run_launcher
  class: LocalRunLauncher
concurrency:
  pools:
    default_limit: 1
    granularity: op
  runs:
    max_concurrent_runs: 6
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
run_monitoring:
  enabled: true
  poll_interval_seconds: {poll_s}
  start_timeout_seconds: 180
  max_runtime_seconds: 14400
  free_slots_after_run_end_seconds: {free_s}
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
telemetry:
  enabled: false
"""


def database_url(server_url: str, name: str, driver: str | None = None) -> str:
    """The URL of database `name` on the server of `server_url` (optionally another driver)."""
    url = make_url(server_url).set(database=name)
    if driver:
        url = url.set(drivername=driver)
    return url.render_as_string(hide_password=False)


def ensure_database(server_url: str, name: str) -> None:
    """Create database `name` on the server of `server_url` unless it exists."""
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if not found:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


def write_instance_yaml(home: Path, dagster_url: str, *, poll_s: int = 30) -> Path:
    """DAGSTER_HOME/dagster.yaml for the stack (dagster-postgres needs the psycopg2 driver)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    path.write_text(INSTANCE_YAML.format(dagster_url=dagster_url, poll_s=poll_s, free_s=poll_s))
    return path


#: The code location's name: the one the repository's `workspace.yaml` (a python_module entry)
#: gives it, so runs, schedules and sensors keep their origin however the location is served.
LOCATION_NAME = "submissions_pipeline.definitions"


def write_workspace_yaml(home: Path, grpc_port: int) -> Path:
    """The workspace the webserver and the daemon load: the stack's code server, over gRPC."""
    path = home / "workspace.yaml"
    path.write_text(
        "# Written by `submissions up`: the code location served by its own code server.\n"
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {grpc_port}\n"
        f'      location_name: "{LOCATION_NAME}"\n'
    )
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StackConfig:
    """What `make up` starts; the scheduler soak starts the same stack, accelerated."""

    home: Path = field(default_factory=lambda: PROJECT_ROOT / "var" / "up")
    server_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    database: str = "submissions_up"
    port: int = 3000
    oems: list[str] | None = None
    per_oem: int = 20
    browser_slots: int = 2
    monitoring_poll_s: int = 30
    sandbox_knobs: Mapping[str, Any] | None = None
    #: Extra environment of the servers and runs (accelerated sensors, another adapters folder).
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def job_store_url(self) -> str:
        return database_url(self.server_url, self.database)

    @property
    def dagster_url(self) -> str:
        return database_url(self.server_url, f"{self.database}_dagster", "postgresql+psycopg2")

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_group(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start `argv` as the leader of a new process group (this process's environment), output
    appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_default_signals,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen[bytes], *, grace_s: float = 20) -> int:
    """Stop a process group and every descendant of its leader (even one that left the group)."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    for child in family:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(family, timeout=5)
    return proc.wait()


class Stack:
    """The running stack: enter to start it, exit to stop every process it started."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.daemon: subprocess.Popen[bytes] | None = None
        self.webserver: subprocess.Popen[bytes] | None = None
        self.code_server: subprocess.Popen[bytes] | None = None
        self.portal_urls: dict[str, str] = {}
        self.sandbox: Any = None  # the sandbox server: knobs and ledgers
        self._exit = contextlib.ExitStack()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    @property
    def logs(self) -> Path:
        return self.config.home / "logs"

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in (self.webserver, self.daemon, self.code_server):
            if proc is not None and proc.poll() is None:
                try:
                    stop_group(proc)
                except KeyboardInterrupt:  # a second Ctrl-C: stop at once, but stop
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
        self._exit.close()

    def _start(self) -> None:
        from submissions_pipeline.demo import demo_environment
        from submissions_pipeline.launcher import persistent_instance

        cfg = self.config
        subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "ensure-postgres.sh")], check=True)
        ensure_database(cfg.server_url, cfg.database)
        ensure_database(cfg.server_url, f"{cfg.database}_dagster")
        self.logs.mkdir(parents=True, exist_ok=True)
        write_instance_yaml(cfg.dagster_home, cfg.dagster_url, poll_s=cfg.monitoring_poll_s)
        # The servers, their code servers and run workers inherit these; restored on exit.
        exported = {
            "SUBMISSIONS_HOME": str(cfg.home),
            "SUBMISSIONS_DB_URL": cfg.job_store_url,
            "DAGSTER_HOME": str(cfg.dagster_home),
            **cfg.env,
        }
        self._exit.enter_context(exported_environment(exported))
        demo = self._exit.enter_context(
            demo_environment(cfg.oems, per_oem=cfg.per_oem, sandbox_knobs=cfg.sandbox_knobs)
        )
        self.portal_urls = dict(demo.portal_urls)
        self.sandbox = demo.sandbox
        with persistent_instance(cfg.dagster_home, browser_slots=cfg.browser_slots):
            pass  # sizes the browser pool in the instance's storage
        bindir = Path(sys.executable).parent
        grpc_port = _free_port()
        self.code_server = start_group(
            [
                str(bindir / "dagster"),
                "code-server",
                "start",
                "-m",
                "submissions_pipeline.definitions",
                "-d",
                str(PROJECT_ROOT),
                "-h",
                "127.0.0.1",
                "-p",
                str(grpc_port),
                "--location-name",
                LOCATION_NAME,
            ],
            self.logs / "code-server.log",
        )
        self._wait_code_server(grpc_port)
        workspace = str(write_workspace_yaml(cfg.home, grpc_port))
        self.daemon = start_group(
            [str(bindir / "dagster-daemon"), "run", "-w", workspace], self.logs / "daemon.log"
        )
        self.webserver = start_group(
            [
                str(bindir / "dagster-webserver"),
                "-w",
                workspace,
                "-h",
                "127.0.0.1",
                "-p",
                str(cfg.port),
            ],
            self.logs / "webserver.log",
        )
        self.wait_ready()

    def _wait_code_server(self, port: int, timeout_s: float = 180) -> None:
        """Wait until the code server listens: it loads the definitions before it serves."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.code_server is not None and self.code_server.poll() is not None:
                raise RuntimeError(f"the code server exited; see {self.logs}/code-server.log")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return
            time.sleep(0.5)
        raise TimeoutError(f"the code server did not listen within {timeout_s:.0f} s")

    def wait_ready(self, timeout_s: float = 180) -> None:
        """Wait until the webserver answers and has loaded the code location."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for proc in (self.webserver, self.daemon, self.code_server):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited; see {self.logs}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(1)
        raise TimeoutError(f"the webserver did not answer within {timeout_s:.0f} s")

    def restart_daemon(self) -> None:
        """Stop the daemon and start it again (the soak's chaos; an operator's restart); the
        runs in flight belong to the code server and keep running."""
        assert self.daemon is not None
        argv = [str(a) for a in self.daemon.args]
        stop_group(self.daemon)
        self.daemon = start_group(argv, self.logs / "daemon.log")

    def serve_forever(self, echo: Any = print) -> int:
        """Block until Ctrl-C or SIGTERM, or until a server exits; then the caller stops all."""
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            echo(f"Dagster UI: {self.url}  (DAGSTER_HOME={self.config.dagster_home})")
            echo(f"  instance and job store on {make_url(self.config.server_url).host}")
            for oem, url in self.portal_urls.items():
                echo(f"  sandbox {oem:<10} {url}/")
            echo(f"  logs: {self.logs}   (Ctrl-C stops everything)")
            servers = (self.daemon, self.webserver, self.code_server)
            while all(p is not None and p.poll() is None for p in servers):
                time.sleep(1)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def running_stack(config: StackConfig) -> Iterator[Stack]:
    """The stack for the duration of a block."""
    with Stack(config) as stack:
        yield stack
