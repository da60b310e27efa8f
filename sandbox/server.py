"""Serves the sandbox portals on loopback: ``SandboxServer`` (in-process) and ``python -m sandbox``.

All portals run in one background thread with its own event loop (one uvicorn server per portal),
so a test, the demo or the benchmark can start them, drive them with Chromium and read their
ledgers directly. Only loopback addresses are accepted: the sandbox never listens on a network.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, get_args

import uvicorn

import sandbox
from sandbox import accounts, admin_client
from sandbox.background import BackgroundServers
from sandbox.faults import FaultConfig
from sandbox.ledger import DuplicateCase, LedgerEntry
from sandbox.portal import Portal

DEFAULT_PORTS: dict[str, int] = {"northwind": 8701, "aurora": 8702, "kestrel": 8703}


class SandboxError(RuntimeError):
    """The sandbox could not start (port taken, non-loopback host, server not answering)."""


def _require_loopback(host: str) -> None:
    try:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError) as exc:
        raise SandboxError(f"cannot resolve sandbox host {host!r}") from exc
    if not address.is_loopback:
        raise SandboxError(f"the sandbox only listens on loopback, not {host!r}")


class SandboxServer(BackgroundServers):
    """Runs the sandbox portals in-process on 127.0.0.1; use as a context manager.

    ``ports`` maps OEM key → port; a missing key or port 0 picks a free port. ``knobs`` apply to
    every portal and ``portal_knobs[oem]`` override them; both become the portals' reset defaults.
    """

    def __init__(
        self,
        ports: Mapping[str, int] | None = None,
        *,
        host: str = "127.0.0.1",
        knobs: Mapping[str, Any] | None = None,
        portal_knobs: Mapping[str, Mapping[str, Any]] | None = None,
        oems: Sequence[str] | None = None,
        startup_timeout_s: float = 15.0,
    ) -> None:
        super().__init__()
        _require_loopback(host)
        self.host = host
        self.oems = tuple(oems or sandbox.PORTALS)
        unknown = set(self.oems) - set(sandbox.PORTALS)
        if unknown:
            raise SandboxError(f"unknown OEM(s): {sorted(unknown)}")
        self._requested_ports = dict(ports or {})
        self._startup_timeout_s = startup_timeout_s
        self.portals: dict[str, Portal] = {
            oem: sandbox.PORTALS[oem](
                FaultConfig(**{**dict(knobs or {}), **dict((portal_knobs or {}).get(oem, {}))})
            )
            for oem in self.oems
        }
        self._ports: dict[str, int] = {}
        self._loop_error: BaseException | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> SandboxServer:
        """Bind the ports, start serving and return once every portal answers HTTP."""
        if self._thread is not None:
            return self
        sockets: list[socket.socket] = []
        try:
            for oem in self.oems:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.host, self._requested_ports.get(oem, 0)))
                sock.listen(128)
                sockets.append(sock)
                self._ports[oem] = sock.getsockname()[1]
        except OSError as exc:
            for sock in sockets:
                sock.close()
            raise SandboxError(f"cannot bind sandbox port: {exc}") from exc
        self._servers = [
            uvicorn.Server(
                uvicorn.Config(
                    self.portals[oem].app,
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=1,
                )
            )
            for oem in self.oems
        ]
        self._thread = threading.Thread(
            target=self._run, args=(sockets,), name="sandbox-portals", daemon=True
        )
        self._thread.start()
        self._wait_until_answering()
        return self

    def _run(self, sockets: list[socket.socket]) -> None:
        async def serve_all() -> None:
            await asyncio.gather(
                *(
                    server.serve(sockets=[sock])
                    for server, sock in zip(self._servers, sockets, strict=True)
                )
            )

        try:
            asyncio.run(serve_all())
        except BaseException as exc:  # surfaced by _wait_until_answering / stop
            self._loop_error = exc
        finally:
            for sock in sockets:
                sock.close()

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        pending = set(self.oems)
        while pending:
            if self._loop_error is not None:
                raise SandboxError(f"sandbox server crashed: {self._loop_error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise SandboxError(f"sandbox portals not answering: {sorted(pending)}")
            for oem in list(pending):
                try:
                    admin_client.config(self.base_url(oem), timeout=1.0)
                    pending.discard(oem)
                except OSError:
                    pass
            if pending:
                time.sleep(0.05)

    # ---------------------------------------------------------------- addresses

    def port(self, oem: str) -> int:
        return self._ports[oem]

    def base_url(self, oem: str) -> str:
        """Where the adapter starts, e.g. ``http://127.0.0.1:8701`` (no trailing slash)."""
        return f"http://{self.host}:{self._ports[oem]}"

    def admin_url(self, oem: str) -> str:
        return self.base_url(oem) + "/__admin"

    @property
    def urls(self) -> dict[str, str]:
        return {oem: self.base_url(oem) for oem in self.oems}

    # ---------------------------------------------------------------- state

    def portal(self, oem: str) -> Portal:
        """The portal object itself (config, ledger, dice) for in-process assertions."""
        return self.portals[oem]

    def configure(self, oem: str, **knobs: Any) -> FaultConfig:
        """Change some of ``oem``'s knobs now (same effect as ``POST /__admin/config``)."""
        return self.portals[oem].configure(**knobs)

    def config(self, oem: str) -> FaultConfig:
        return self.portals[oem].config

    def ledger(self, oem: str) -> list[LedgerEntry]:
        """Every submission ``oem`` received, oldest first."""
        return self.portals[oem].ledger.entries()

    def duplicates(self, oem: str) -> list[DuplicateCase]:
        return self.portals[oem].ledger.duplicates()

    def reset(self, oem: str | None = None) -> None:
        """Clear ledgers, sessions and drafts; restore the start-up knobs (one or all portals)."""
        for key in [oem] if oem else self.oems:
            self.portals[key].reset()

    @staticmethod
    def credentials(oem: str, dealer_id: str) -> accounts.DealerCredentials:
        return accounts.credentials(oem, dealer_id)


# -------------------------------------------------------------------- command line


def _knob_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fault knobs (applied to every portal)")
    for name, info in FaultConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if info.annotation is bool:
            group.add_argument(flag, action="store_true", default=None, help=info.description)
        elif name == "popup_kinds":
            group.add_argument(
                flag,
                type=lambda text: [kind for kind in text.split(",") if kind],
                metavar="KIND[,KIND]",
                help=info.description,
            )
        elif name == "ui_version":
            group.add_argument(flag, choices=get_args(info.annotation), help=info.description)
        else:
            group.add_argument(flag, type=info.annotation, help=info.description)


def _parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        target, _, raw = item.partition("=")
        oem, _, knob = target.partition(".")
        if not raw or not knob or oem not in sandbox.PORTALS:
            raise SystemExit(f"--set expects OEM.KNOB=VALUE, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides.setdefault(oem, {})[knob] = value
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the portals in the foreground until Ctrl-C / SIGTERM; prints each portal's URL."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Serve the sandbox OEM portals (northwind, aurora, kestrel) on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    for oem, port in DEFAULT_PORTS.items():
        parser.add_argument(
            f"--{oem}-port", type=int, default=port, help=f"port of {oem} (0 = any free port)"
        )
    parser.add_argument(
        "--only", action="append", choices=sorted(sandbox.PORTALS), help="serve only these OEMs"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OEM.KNOB=VALUE",
        help="per-portal knob override, e.g. --set aurora.ui_version=v2 (VALUE is JSON or text)",
    )
    parser.add_argument(
        "--show-accounts", action="store_true", help="print every dealer's demo credentials"
    )
    _knob_arguments(parser)
    args = parser.parse_args(argv)

    knobs = {
        name: getattr(args, name)
        for name in FaultConfig.model_fields
        if getattr(args, name, None) is not None
    }
    oems = args.only or list(sandbox.PORTALS)
    ports = {oem: getattr(args, f"{oem}_port") for oem in oems}
    try:
        server = SandboxServer(
            ports,
            host=args.host,
            knobs=knobs,
            portal_knobs=_parse_overrides(args.set),
            oems=oems,
        ).start()
    except (SandboxError, ValueError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        for oem in oems:
            portal = server.portal(oem)
            print(f"{oem:<10} {portal.name:<18} {server.base_url(oem)}/  (admin: /__admin/config)")
            if args.show_accounts:
                for creds in accounts.all_credentials(oem):
                    totp = f"  totp_secret={creds.totp_secret}" if creds.totp_secret else ""
                    print(f"    {creds.dealer_id}  {creds.username}  {creds.password}{totp}")
        sys.stdout.flush()
        stop.wait()
    finally:
        server.stop()
    return 0
