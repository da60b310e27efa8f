"""Real servers the tests start: moto's S3 server as a subprocess on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from submissions_pipeline.artifacts import S3ArtifactStore

REGION = "us-east-1"
ACCESS_KEY, SECRET_KEY = "testing", "testing"  # moto accepts any pair


class MotoServer:
    """One `moto_server` process serving S3 on 127.0.0.1:port."""

    def __init__(self) -> None:
        # The free port is only free when we look; if another process takes it first, moto
        # exits at once and we try another.
        for _ in range(3):
            self.port = _free_port()
            self.endpoint_url = f"http://127.0.0.1:{self.port}"
            self.process = subprocess.Popen(
                [_moto_server_bin(), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_until_up():
                return
        raise RuntimeError("moto_server did not start on a free loopback port")

    def _wait_until_up(self, timeout_s: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if requests.get(f"{self.endpoint_url}/moto-api/", timeout=1).ok:
                    return True
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        return False

    def store(self, bucket: str | None = None, **kwargs: Any) -> S3ArtifactStore:
        """A store on this server with a new bucket (unless named) and its lifecycle rule."""
        store = S3ArtifactStore.from_endpoint(
            self.endpoint_url,
            bucket or new_bucket_name(),
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            **kwargs,
        )
        store.ensure_bucket()
        return store

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def new_bucket_name() -> str:
    return f"evidence-{uuid.uuid4().hex[:12]}"


def _moto_server_bin() -> str:
    beside_python = Path(sys.executable).parent / "moto_server"
    found = str(beside_python) if beside_python.exists() else shutil.which("moto_server")
    if not found:
        pytest.fail("moto_server not found: install the test extras (moto[server])")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """An ASGI app served by uvicorn on a loopback port, in a thread; it can be stopped and
    started again on the same port (a receiver that goes down and comes back)."""

    def __init__(self, app: Any, port: int | None = None):
        self.app = app
        self.port = port or _free_port()
        self._server: Any = None
        self._thread: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AppServer:
        import threading

        import uvicorn

        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                pytest.fail(f"uvicorn did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
