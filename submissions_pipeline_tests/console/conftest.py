"""Fixtures for the console tests: dead letters made by the real runner against the sandbox,
and the console served by uvicorn on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import uvicorn

from submissions_pipeline.console import ConsoleDeps, create_app
from submissions_pipeline.console.auth import Accounts, Role, SessionSigner
from submissions_pipeline.oems import oem_registry
from submissions_pipeline.settings import PROJECT_ROOT

OPERATOR, PASSWORD = "ana", "pw4x"  # short on purpose: scans must still find no secret
VIEWER = "vic"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ConsoleServer:
    url: str
    deps: ConsoleDeps

    def signed_in(self, name: str = OPERATOR) -> requests.Session:
        """An HTTP session signed in through the login form."""
        http = requests.Session()
        http.trust_env = False
        r = http.post(f"{self.url}/login", data={"username": name, "password": PASSWORD})
        assert r.status_code == 200 and "Sign out" in r.text, r.text[:300]
        return http


def serve_console(deps: ConsoleDeps) -> Iterator[ConsoleServer]:
    """Run the console in a thread until the generator is closed."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    deps.artifacts.console_url = url
    server = uvicorn.Server(
        uvicorn.Config(create_app(deps), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    try:
        yield ConsoleServer(url, deps)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def console_deps_for(store, artifacts, tmp_path: Path, crm=None) -> ConsoleDeps:  # type: ignore[no-untyped-def]
    """Console dependencies over a test's store and evidence, with an operator and a viewer."""
    accounts = Accounts(tmp_path / "console-accounts.json")
    accounts.put(OPERATOR, PASSWORD, Role.OPERATOR)
    accounts.put(VIEWER, PASSWORD, Role.VIEWER)
    registry = oem_registry()
    return ConsoleDeps(
        store=store,
        artifacts=artifacts,
        accounts=accounts,
        signer=SessionSigner(b"test-signing-key", ttl_s=3600),
        crm=crm,
        oems={oem: registry.settings(oem) for oem in registry.oem_keys()},
        adapters_dir=PROJECT_ROOT / "adapters",
    )


@pytest.fixture
def console(runner_deps, tmp_path) -> Iterator[ConsoleServer]:  # type: ignore[no-untyped-def]
    """The console over the runner's store and local evidence."""
    yield from serve_console(console_deps_for(runner_deps.store, runner_deps.artifacts, tmp_path))
