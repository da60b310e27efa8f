"""The start/stop protocol the sandbox's local servers share: uvicorn servers served by one
daemon thread of their own, stopped by asking each to exit and joining that thread."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

import uvicorn


class BackgroundServers:
    """Subclasses fill `_servers` and `_thread` in `start()`; `stop()` and the context manager
    come from here."""

    def __init__(self) -> None:
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        """Ask every server to exit and wait for the serving thread (idempotent)."""
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
