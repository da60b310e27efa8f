"""A loopback TCP proxy that can be switched off: a server 'unreachable for a while'."""

from __future__ import annotations

import contextlib
import socket
import threading


class ToggleProxy:
    """Forwards 127.0.0.1:port to a target port; while down, every connection is reset."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.up_ = threading.Event()
        self.up_.set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = False
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        self.up_.clear()
        for c in list(self._conns):
            _close(c)
        self._conns.clear()

    def up(self) -> None:
        self.up_.set()

    def close(self) -> None:
        self._stop = True
        self.down()
        _close(self._listener)

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.up_.is_set():
                client.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                _close(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _close(client)
                continue
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _close(src)
        _close(dst)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.close()
