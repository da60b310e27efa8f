"""Serves one test portal on a free loopback port, in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType

import uvicorn

from sandbox.testportals.base import TestPortal


class TestPortalServer:
    """``with TestPortalServer(portal) as server: server.base_url``."""

    __test__ = False  # not a pytest class

    def __init__(self, portal: TestPortal, startup_timeout_s: float = 15.0):
        self.portal = portal
        config = uvicorn.Config(portal.app, host="127.0.0.1", port=0, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._timeout = startup_timeout_s
        self.port = 0

    def _serve(self) -> None:
        asyncio.run(self._server.serve())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> TestPortalServer:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"test portal {self.portal.oem} did not start")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
